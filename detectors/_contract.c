/* The event contract's fast accept, in C: a decoded event that passes here is valid as it stands.
 *
 * detectors/events.py holds the contract (each field's JSON types, predicate and the error it gives);
 * each field there names one of the checks below (KINDS). This only answers "valid, as is" or "not
 * sure": on "not sure" events.py runs its own checks, which accept the event or say exactly why not.
 * tests/detectors/test_events.py checks that both agree on every field with edge-case values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

enum { K_STR, K_ID, K_COUNT, K_NUMBER, K_BOOL, K_TS, K_ACCOUNT_TYPE, K_INT, K_LATENCY, K_SHORT, N_KINDS };
static const char *const kind_names[N_KINDS] = {"str", "id", "count", "number", "bool", "ts", "account_type",
                                                "int", "latency", "short"};
/* The contract's limits come from events.py with each call (they are declared there, once). */
typedef struct {
    PyObject *account_types;
    Py_ssize_t max_id_chars;
    double max_ts;
} limits;

/* An int's value as a double, or 0 when it does not fit a long long (Python decides those). */
static int small_int(PyObject *v, double *out) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = (double)x;
    return 1;
}

/* A JSON number (int or float, never bool) as a double; 0 when it is not one. */
static int number(PyObject *v, double *out) {
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 1;
    }
    return PyLong_CheckExact(v) && small_int(v, out);
}

/* 1 when the check ``kind`` accepts v, 0 when not, -1 on an error (a kind that is not an int, or a
 * set lookup that raised). */
static int value_ok(PyObject *v, PyObject *kind_obj, const limits *lim) {
    double d;
    long kind = PyLong_AsLong(kind_obj);
    if (kind == -1 && PyErr_Occurred()) return -1;
    switch (kind) {
    case K_STR: return PyUnicode_CheckExact(v);
    case K_ID: return PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) > 0 && PyUnicode_GET_LENGTH(v) <= lim->max_id_chars;
    case K_COUNT: return PyLong_CheckExact(v) && small_int(v, &d) && d >= 0;
    case K_NUMBER: return number(v, &d) && isfinite(d);
    case K_BOOL: return PyBool_Check(v);
    case K_TS: return number(v, &d) && d > 0 && d < lim->max_ts;
    case K_ACCOUNT_TYPE: return PyUnicode_CheckExact(v) ? PySet_Contains(lim->account_types, v) : 0;
    case K_INT: return PyLong_CheckExact(v);
    case K_LATENCY: return number(v, &d) && d >= 0 && d < INFINITY;
    case K_SHORT: return PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) <= lim->max_id_chars;
    default: return 0;
    }
}

PyDoc_STRVAR(valid_doc,
"valid(event, required_names, required_kinds, optional_kinds, account_types, max_id_chars, max_ts) -> bool\n\n"
"True when ``event`` (a dict) has every required field and every field the contract knows holds a\n"
"value its check (a KINDS value) accepts, optional ones may be None; False means \"not sure\".");

static PyObject *valid(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || !PyDict_CheckExact(args[0]) || !PyTuple_Check(args[1]) || !PyTuple_Check(args[2]) ||
        !PyDict_Check(args[3]) || !PyAnySet_Check(args[4]))
        return PyErr_Format(PyExc_TypeError, "valid(dict, tuple, tuple, dict, frozenset, int, float)");
    PyObject *event = args[0], *names = args[1], *kinds = args[2], *optional = args[3];
    limits lim = {args[4], PyLong_AsSsize_t(args[5]), PyFloat_AsDouble(args[6])};
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(kinds) != n) return PyErr_Format(PyExc_ValueError, "one kind per required name");
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyDict_GetItemWithError(event, PyTuple_GET_ITEM(names, i));
        if (value == NULL) {
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_FALSE;
        }
        int ok = value_ok(value, PyTuple_GET_ITEM(kinds, i), &lim);
        if (ok < 0) return NULL;
        if (!ok) Py_RETURN_FALSE;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(event, &pos, &key, &value)) {
        PyObject *kind = PyDict_GetItemWithError(optional, key);
        if (kind == NULL) {
            if (PyErr_Occurred()) return NULL;
            continue; /* a required field (checked above) or one the contract ignores */
        }
        int ok = value == Py_None ? 1 : value_ok(value, kind, &lim);
        if (ok < 0) return NULL;
        if (!ok) Py_RETURN_FALSE;
    }
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"valid", (PyCFunction)(void (*)(void))valid, METH_FASTCALL, valid_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "detectors._contract", "The event contract's fast accept (see events.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__contract(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *kinds = PyDict_New();
    for (int i = 0; kinds != NULL && i < N_KINDS; i++) {
        PyObject *value = PyLong_FromLong(i);
        if (value == NULL || PyDict_SetItemString(kinds, kind_names[i], value) < 0) Py_CLEAR(kinds);
        Py_XDECREF(value);
    }
    if (kinds == NULL || PyModule_AddObject(m, "KINDS", kinds) < 0) {
        Py_XDECREF(kinds);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

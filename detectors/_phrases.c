/* The phrase scan with Hyperscan: which phrase patterns occur in a lowercased cut, as one bitmask.
 *
 * features.PhraseBook matches every family and category pattern in one pass over each request's head and
 * tail. RE2's Set (the definition, and the fallback where Hyperscan is missing) runs at ~1.6 ns a byte
 * plus ~0.6 µs a call, the costliest step of a request's features; Hyperscan's multi-pattern engine runs
 * the same patterns at a fraction of that. Each pattern is compiled to report once (SINGLEMATCH), and the
 * callback ORs its bit into the result, so nothing but an int crosses back into Python.
 * tests/detectors/test_features.py checks the two engines agree on every pattern over the real corpora.
 *
 * The scratch space is used with the GIL held (the scan is shorter than a GIL hand-off), so one scratch
 * per compiled set is safe across Python threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <hs/hs.h>

typedef struct {
    PyObject_HEAD
    hs_database_t *db;
    hs_scratch_t *scratch;
    unsigned long long *bits; /* per pattern: the bit it sets */
    Py_ssize_t n;
} Scanner;

static void Scanner_dealloc(Scanner *self) {
    if (self->scratch) hs_free_scratch(self->scratch);
    if (self->db) hs_free_database(self->db);
    PyMem_Free(self->bits);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Scanner_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"patterns", "bits", NULL};
    PyObject *patterns, *bits;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!:Scanner", kwlist, &PyTuple_Type, &patterns, &PyTuple_Type,
                                     &bits))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(patterns);
    if (n == 0 || PyTuple_GET_SIZE(bits) != n)
        return PyErr_Format(PyExc_ValueError, "Scanner: one bit per pattern, at least one pattern");
    Scanner *self = (Scanner *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    const char **exprs = PyMem_Calloc(n, sizeof(char *));
    unsigned *flags = PyMem_Calloc(n, sizeof(unsigned)), *ids = PyMem_Calloc(n, sizeof(unsigned));
    self->bits = PyMem_Calloc(n, sizeof(unsigned long long));
    self->n = n;
    if (!exprs || !flags || !ids || !self->bits) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        exprs[i] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(patterns, i));
        self->bits[i] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(bits, i));
        if (exprs[i] == NULL || PyErr_Occurred()) goto fail;
        flags[i] = HS_FLAG_SINGLEMATCH | HS_FLAG_UTF8;
        ids[i] = (unsigned)i;
    }
    hs_compile_error_t *error = NULL;
    if (hs_compile_multi(exprs, flags, ids, (unsigned)n, HS_MODE_BLOCK, NULL, &self->db, &error) != HS_SUCCESS) {
        if (error != NULL && error->expression >= 0)
            PyErr_Format(PyExc_ValueError, "pattern %R: %s", PyTuple_GET_ITEM(patterns, error->expression),
                         error->message);
        else
            PyErr_Format(PyExc_ValueError, "Hyperscan: %s", error ? error->message : "compile failed");
        hs_free_compile_error(error);
        goto fail;
    }
    if (hs_alloc_scratch(self->db, &self->scratch) != HS_SUCCESS) {
        PyErr_SetString(PyExc_MemoryError, "Hyperscan: no scratch space");
        goto fail;
    }
    PyMem_Free(exprs);
    PyMem_Free(flags);
    PyMem_Free(ids);
    return (PyObject *)self;
fail:
    PyMem_Free(exprs);
    PyMem_Free(flags);
    PyMem_Free(ids);
    Py_DECREF(self);
    return NULL;
}

typedef struct {
    const unsigned long long *bits;
    unsigned long long found;
} Hits;

static int on_match(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags,
                    void *context) {
    Hits *hits = (Hits *)context;
    hits->found |= hits->bits[id];
    return 0;
}

static PyObject *Scanner_scan(Scanner *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) return PyErr_Format(PyExc_TypeError, "scan() takes bytes, not %.100s", Py_TYPE(arg)->tp_name);
    Py_ssize_t len = PyBytes_GET_SIZE(arg);
    if (len > UINT_MAX) return PyErr_Format(PyExc_ValueError, "scan(): text too long");
    Hits hits = {self->bits, 0};
    hs_error_t rc = hs_scan(self->db, PyBytes_AS_STRING(arg), (unsigned)len, 0, self->scratch, on_match, &hits);
    if (rc != HS_SUCCESS) return PyErr_Format(PyExc_RuntimeError, "Hyperscan scan failed (%d)", (int)rc);
    return PyLong_FromUnsignedLongLong(hits.found);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(text: bytes) -> int: the OR of the bits of every pattern found in text (UTF-8)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "detectors._phrases.Scanner",
    .tp_doc = PyDoc_STR("Scanner(patterns, bits): a compiled Hyperscan set; scan(text) -> OR of the bits found."),
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Scanner_new,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_phrases", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__phrases(void) {
    if (hs_valid_platform() != HS_SUCCESS) {
        PyErr_SetString(PyExc_ImportError, "Hyperscan needs SSSE3; the phrase scan falls back to RE2");
        return NULL;
    }
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

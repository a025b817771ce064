/* River's HalfSpaceTrees score and learning step, walked in C over a flat copy of the trees.
 *
 * River 0.26's HalfSpaceTrees walks each tree in Python (~15 µs a score and ~28 µs a learn for 10 trees
 * of height 8, the most expensive steps of an account's scoring tick). The splits never change once the
 * trees are built, so detectors/scoring.py copies them into one flat array (FlatTrees) and walks it
 * here: a score reads the reference masses (r_mass, retaken at each window pivot), a learn adds to the
 * live masses (l_mass), which scoring.py keeps in an array between pivots and writes back to River's
 * nodes at a pivot, a checkpoint, or before River itself walks them. Each walk is River's, operation for
 * operation; tests/detectors/test_scoring.py checks scores and masses against River's own trees.
 *
 * Layout: for each tree, its 2**(height+1) - 1 nodes in heap order (children of i at 2i+1 and 2i+2),
 * each a Node below, and their masses in the same order (int64).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    double threshold;
    long long feature; /* index into the names tuple; -1 for a leaf */
} Node;

PyDoc_STRVAR(walk_doc,
"walk(nodes, masses, x, names, n_trees, height, size_limit) -> float | None\n\n"
"The sum over the trees of River's _walk_score for the feature dict ``x``; ``nodes`` is the flat\n"
"array of Node (threshold: double, feature: int64), ``masses`` their r_mass (int64) and ``names`` the\n"
"feature names the indices refer to. None when ``x`` lacks a feature a path needs (River then walks\n"
"by the live l_mass, which the flat copy does not hold).");

static PyObject *walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || !PyDict_Check(args[2]) || !PyTuple_Check(args[3]))
        return PyErr_Format(PyExc_TypeError, "walk(bytes, bytes, dict, tuple, int, int, float)");
    Py_buffer buf, mass_buf;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &mass_buf, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *x = args[2], *names = args[3], *result = NULL;
    Py_ssize_t n_trees = PyLong_AsSsize_t(args[4]), height = PyLong_AsSsize_t(args[5]);
    double size_limit = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred()) goto done;
    Py_ssize_t per_tree = ((Py_ssize_t)2 << height) - 1, n_names = PyTuple_GET_SIZE(names);
    if (height < 0 || height > 30 || n_trees < 0 || buf.len != (Py_ssize_t)sizeof(Node) * per_tree * n_trees ||
        mass_buf.len != (Py_ssize_t)sizeof(long long) * per_tree * n_trees) {
        PyErr_SetString(PyExc_ValueError, "walk: nodes and masses do not hold n_trees full trees of this height");
        goto done;
    }
    const Node *nodes = (const Node *)buf.buf;
    const long long *all_masses = (const long long *)mass_buf.buf;
    double total = 0.0;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const Node *tree = nodes + t * per_tree;
        const long long *r_mass = all_masses + t * per_tree;
        Py_ssize_t i = 0;
        long long depth_pow = 1;
        double score = 0.0;
        Py_ssize_t level;
        for (level = 0; level < height; level++) {
            long long r = r_mass[i];
            score += (double)(r * depth_pow);
            if ((double)r < size_limit) break;
            long long f = tree[i].feature;
            if (f < 0 || f >= n_names) {
                PyErr_SetString(PyExc_ValueError, "walk: a branch names no known feature");
                goto done;
            }
            PyObject *v = PyDict_GetItemWithError(x, PyTuple_GET_ITEM(names, f));
            if (v == NULL) {
                if (PyErr_Occurred()) goto done;
                result = Py_NewRef(Py_None);
                goto done;
            }
            double value = PyFloat_AsDouble(v);
            if (value == -1.0 && PyErr_Occurred()) goto done;
            i = value < tree[i].threshold ? 2 * i + 1 : 2 * i + 2;
            depth_pow <<= 1;
        }
        if (level == height) score += (double)(r_mass[i] * depth_pow);
        total += score;
    }
    result = PyFloat_FromDouble(total);
done:
    PyBuffer_Release(&mass_buf);
    PyBuffer_Release(&buf);
    return result;
}

PyDoc_STRVAR(learn_doc,
"learn(nodes, l_mass, x, names, n_trees, height) -> None\n\n"
"River's _walk_learn on every tree for the feature dict ``x``: add 1 to the live ``l_mass`` (a writable\n"
"int64 array in the order of ``nodes``) of each node on the path; where ``x`` lacks a branch's\n"
"feature, the path goes to the child with the larger l_mass (the left one on a tie), as River's does.");

static PyObject *learn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyDict_Check(args[2]) || !PyTuple_Check(args[3]))
        return PyErr_Format(PyExc_TypeError, "learn(bytes, bytearray, dict, tuple, int, int)");
    Py_buffer buf, mass_buf;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &mass_buf, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *x = args[2], *names = args[3], *result = NULL;
    Py_ssize_t n_trees = PyLong_AsSsize_t(args[4]), height = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) goto done;
    Py_ssize_t per_tree = ((Py_ssize_t)2 << height) - 1, n_names = PyTuple_GET_SIZE(names);
    if (height < 0 || height > 30 || n_trees < 0 || buf.len != (Py_ssize_t)sizeof(Node) * per_tree * n_trees ||
        mass_buf.len != (Py_ssize_t)sizeof(long long) * per_tree * n_trees) {
        PyErr_SetString(PyExc_ValueError, "learn: nodes and masses do not hold n_trees full trees of this height");
        goto done;
    }
    /* Every path first, then the increments: a failure part way leaves the masses as they were. */
    Py_ssize_t paths[64][31];
    if (n_trees > 64) {
        PyErr_SetString(PyExc_ValueError, "learn: at most 64 trees");
        goto done;
    }
    const Node *nodes = (const Node *)buf.buf;
    long long *all_masses = (long long *)mass_buf.buf;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const Node *tree = nodes + t * per_tree;
        const long long *l_mass = all_masses + t * per_tree;
        Py_ssize_t i = 0;
        for (Py_ssize_t level = 0; level < height; level++) {
            paths[t][level] = i;
            long long f = tree[i].feature;
            if (f < 0 || f >= n_names) {
                PyErr_SetString(PyExc_ValueError, "learn: a branch names no known feature");
                goto done;
            }
            PyObject *v = PyDict_GetItemWithError(x, PyTuple_GET_ITEM(names, f));
            if (v == NULL) {
                if (PyErr_Occurred()) goto done;
                /* the busier child by live mass; the node's own +1 does not touch its children */
                i = l_mass[2 * i + 1] < l_mass[2 * i + 2] ? 2 * i + 2 : 2 * i + 1;
                continue;
            }
            double value = PyFloat_AsDouble(v);
            if (value == -1.0 && PyErr_Occurred()) goto done;
            i = value < tree[i].threshold ? 2 * i + 1 : 2 * i + 2;
        }
        paths[t][height] = i;
    }
    for (Py_ssize_t t = 0; t < n_trees; t++)
        for (Py_ssize_t level = 0; level <= height; level++) all_masses[t * per_tree + paths[t][level]] += 1;
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&mass_buf);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL, walk_doc},
    {"learn", (PyCFunction)(void (*)(void))learn, METH_FASTCALL, learn_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "detectors._hst",
    "River's HalfSpaceTrees score and learning over a flat copy of the trees (see detectors/scoring.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__hst(void) { return PyModule_Create(&module); }

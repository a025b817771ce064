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

/* The flat trees and their masses (args[0] and args[1]; ``mass_flags`` is PyBUF_WRITABLE for a learn),
 * n_trees and height (args[4] and args[5]), checked to hold n_trees full trees of that height: 0, or -1
 * with an exception set and no buffer held. */
static int trees_arg(PyObject *const *args, int mass_flags, const char *who, Py_buffer *nodes, Py_buffer *masses,
                     Py_ssize_t *n_trees, Py_ssize_t *height) {
    if (PyObject_GetBuffer(args[0], nodes, PyBUF_SIMPLE) < 0) return -1;
    if (PyObject_GetBuffer(args[1], masses, mass_flags) < 0) {
        PyBuffer_Release(nodes);
        return -1;
    }
    *n_trees = PyLong_AsSsize_t(args[4]);
    *height = PyLong_AsSsize_t(args[5]);
    if (!PyErr_Occurred()) {
        Py_ssize_t per_tree = *height >= 0 && *height <= 30 ? ((Py_ssize_t)2 << *height) - 1 : -1;
        if (per_tree > 0 && *n_trees >= 0 && nodes->len == (Py_ssize_t)sizeof(Node) * per_tree * *n_trees &&
            masses->len == (Py_ssize_t)sizeof(long long) * per_tree * *n_trees)
            return 0;
        PyErr_Format(PyExc_ValueError, "%s: nodes and masses do not hold n_trees full trees of this height", who);
    }
    PyBuffer_Release(masses);
    PyBuffer_Release(nodes);
    return -1;
}

/* x's value of the feature a branch splits on: 1 with *value set, 0 when x lacks it, -1 on error. */
static int branch_value(const Node *node, PyObject *x, PyObject *names, const char *who, double *value) {
    if (node->feature < 0 || node->feature >= PyTuple_GET_SIZE(names)) {
        PyErr_Format(PyExc_ValueError, "%s: a branch names no known feature", who);
        return -1;
    }
    PyObject *v = PyDict_GetItemWithError(x, PyTuple_GET_ITEM(names, node->feature));
    if (v == NULL) return PyErr_Occurred() ? -1 : 0;
    *value = PyFloat_AsDouble(v);
    return *value == -1.0 && PyErr_Occurred() ? -1 : 1;
}

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
    Py_ssize_t n_trees, height;
    if (trees_arg(args, PyBUF_SIMPLE, "walk", &buf, &mass_buf, &n_trees, &height) < 0) return NULL;
    PyObject *x = args[2], *names = args[3], *result = NULL;
    double size_limit = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred()) goto done;
    Py_ssize_t per_tree = ((Py_ssize_t)2 << height) - 1;
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
            double value;
            int found = branch_value(&tree[i], x, names, "walk", &value);
            if (found < 0) goto done;
            if (found == 0) {
                result = Py_NewRef(Py_None);
                goto done;
            }
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
    Py_ssize_t n_trees, height;
    if (trees_arg(args, PyBUF_WRITABLE, "learn", &buf, &mass_buf, &n_trees, &height) < 0) return NULL;
    PyObject *x = args[2], *names = args[3], *result = NULL;
    Py_ssize_t per_tree = ((Py_ssize_t)2 << height) - 1;
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
            double value;
            int found = branch_value(&tree[i], x, names, "learn", &value);
            if (found < 0) goto done;
            if (found == 0) /* the busier child by live mass (the node's own +1 does not touch its children) */
                i = l_mass[2 * i + 1] < l_mass[2 * i + 2] ? 2 * i + 2 : 2 * i + 1;
            else
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

/* The linker's fold of observations, in C, over the linker's own Python structures; and the targets
 * of one event (clusters.cluster_targets), which every event pays for, cluster stage in process or not.
 *
 * detectors/clusters.py's Linker folds each (account, target) observation into an LRU of targets and an
 * LRU of decaying links. In Python the fold was the costliest step of the cluster stage (~15% of a
 * replay with the stage in process): a handful of dict operations per target, wrapped in interpreter
 * overhead. This is the same fold, operation for operation and in the same order, on the same
 * OrderedDicts, lists, tuples and set, so Linker.clusters(), checkpoints and partials are unchanged;
 * tests/detectors/test_clusters.py checks it against the Python definition on random streams.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h>

/* ---- Target: what the linker remembers of one target (a template, an IP /24, a payment fingerprint) */

typedef struct {
    PyObject_HEAD
    PyObject *recent;   /* list of (ts, account) of the latest hits, oldest first */
    PyObject *accounts; /* dict: account -> times it hit the target */
    char popular;       /* shared by too many accounts: links nobody */
    double since;       /* when its account count started (0: unknown, set at the next hit) */
} Target;

static PyTypeObject TargetType;

static Target *target_alloc(PyTypeObject *type, PyObject *recent, PyObject *accounts, int popular, double since) {
    Target *t = (Target *)type->tp_alloc(type, 0);
    if (t == NULL) return NULL;
    t->recent = recent ? Py_NewRef(recent) : PyList_New(0);
    t->accounts = accounts ? Py_NewRef(accounts) : PyDict_New();
    t->popular = (char)popular;
    t->since = since;
    if (t->recent == NULL || t->accounts == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

static PyObject *Target_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"recent", "accounts", "popular", "since", NULL};
    PyObject *recent = NULL, *accounts = NULL;
    int popular = 0;
    double since = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O!O!pd:Target", kwlist, &PyList_Type, &recent, &PyDict_Type,
                                     &accounts, &popular, &since))
        return NULL;
    return (PyObject *)target_alloc(type, recent, accounts, popular, since);
}

static int Target_traverse(Target *self, visitproc visit, void *arg) {
    Py_VISIT(self->recent);
    Py_VISIT(self->accounts);
    return 0;
}

static int Target_clear(Target *self) {
    Py_CLEAR(self->recent);
    Py_CLEAR(self->accounts);
    return 0;
}

static void Target_dealloc(Target *self) {
    PyObject_GC_UnTrack(self);
    Target_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Target_reduce(Target *self, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("(O(OOOd))", Py_TYPE(self), self->recent ? self->recent : Py_None,
                         self->accounts ? self->accounts : Py_None, self->popular ? Py_True : Py_False,
                         self->since);
}

static PyMethodDef Target_methods[] = {
    {"__reduce__", (PyCFunction)Target_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* Writable, so that checkpoints of the pure-Python target (a slotted class of the same three
 * attributes, restored by setattr) load into this type. */
static PyMemberDef Target_members[] = {
    {"recent", T_OBJECT_EX, offsetof(Target, recent), 0, "(ts, account) of the latest hits, oldest first"},
    {"accounts", T_OBJECT_EX, offsetof(Target, accounts), 0, "account -> times it hit the target"},
    {"popular", T_BOOL, offsetof(Target, popular), 0, "shared by too many accounts: links nobody"},
    {"since", T_DOUBLE, offsetof(Target, since), 0, "when its account count started (0: at the next hit)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject TargetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "detectors._link.Target",
    .tp_doc = PyDoc_STR("Target(recent=[], accounts={}, popular=False, since=0.0): the linker's memory of one target."),
    .tp_basicsize = sizeof(Target),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Target_new,
    .tp_dealloc = (destructor)Target_dealloc,
    .tp_traverse = (traverseproc)Target_traverse,
    .tp_clear = (inquiry)Target_clear,
    .tp_methods = Target_methods,
    .tp_members = Target_members,
};

/* ---- the fold */

typedef struct {
    PyObject *targets; /* OrderedDict: target key -> Target */
    PyObject *links;   /* OrderedDict: (node, node) -> [weight at last_ts, last_ts, strong?] */
    PyObject *linked;  /* set of pairs whose weight reached the threshold when last updated */
    double window, strong_weight, half_life, threshold, period;
    Py_ssize_t max_per_target, max_targets, recent_per_target, max_links;
} Linker;

static PyObject *s_move_to_end, *s_at, *s_ip;

static int move_to_end(PyObject *od, PyObject *key) {
    PyObject *r = PyObject_CallMethodOneArg(od, s_move_to_end, key);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* popitem(last=False), dropping the pair from `linked` too when given. */
static int evict_oldest(PyObject *od, PyObject *linked) {
    PyObject *it = PyObject_GetIter(od);
    if (it == NULL) return -1;
    PyObject *oldest = PyIter_Next(it);
    Py_DECREF(it);
    if (oldest == NULL) return PyErr_Occurred() ? -1 : 0;
    int rc = PyODict_DelItem(od, oldest);
    if (rc == 0 && linked != NULL && PySet_Discard(linked, oldest) < 0) rc = -1;
    Py_DECREF(oldest);
    return rc;
}

static int set_item(PyObject *list, Py_ssize_t i, PyObject *value) { /* steals value */
    if (value == NULL) return -1;
    return PyList_SetItem(list, i, value);
}

/* Linker._add_link: strengthen the (a, b) link by `weight` at `ts` (decayed since its last update). */
static int add_link(Linker *l, PyObject *a, PyObject *b, double weight, PyObject *ts_obj, double ts, int strong,
                    int cap) {
    int less = PyObject_RichCompareBool(a, b, Py_LT);
    if (less < 0) return -1;
    PyObject *pair = less ? PyTuple_Pack(2, a, b) : PyTuple_Pack(2, b, a);
    if (pair == NULL) return -1;
    double w;
    PyObject *link = PyDict_GetItemWithError(l->links, pair);
    if (link == NULL) {
        if (PyErr_Occurred()) goto fail;
        link = Py_BuildValue("[dOO]", weight, ts_obj, strong ? Py_True : Py_False);
        if (link == NULL) goto fail;
        int rc = PyODict_SetItem(l->links, pair, link);
        Py_DECREF(link);
        if (rc < 0 || (PyDict_GET_SIZE(l->links) > l->max_links && evict_oldest(l->links, l->linked) < 0)) goto fail;
        w = weight;
    } else {
        if (!PyList_CheckExact(link) || PyList_GET_SIZE(link) != 3) {
            PyErr_SetString(PyExc_TypeError, "a link must be a list [weight, last_ts, strong]");
            goto fail;
        }
        double old = PyFloat_AsDouble(PyList_GET_ITEM(link, 0)), last = PyFloat_AsDouble(PyList_GET_ITEM(link, 1));
        if (PyErr_Occurred()) goto fail;
        double since = ts - last > 0.0 ? ts - last : 0.0;
        double sum = old * pow(0.5, since / l->half_life) + weight;
        w = cap && !(sum < weight) ? weight : sum; /* min(weight, sum) keeps weight on ties, as Python does */
        if (set_item(link, 0, PyFloat_FromDouble(w)) < 0) goto fail;
        if (ts > last && set_item(link, 1, Py_NewRef(ts_obj)) < 0) goto fail;
        int held = PyObject_IsTrue(PyList_GET_ITEM(link, 2));
        if (held < 0 || (!held && set_item(link, 2, Py_NewRef(strong ? Py_True : Py_False)) < 0)) goto fail;
        if (move_to_end(l->links, pair) < 0) goto fail;
    }
    if (w >= l->threshold && PySet_Add(l->linked, pair) < 0) goto fail;
    Py_DECREF(pair);
    return 0;
fail:
    Py_DECREF(pair);
    return -1;
}

static long hits_of(PyObject *hits, PyObject *account, long missing) {
    PyObject *n = PyDict_GetItemWithError(hits, account);
    if (n == NULL) return PyErr_Occurred() ? -1 : missing;
    return PyLong_AsLong(n);
}

#define MAX_RECENT 256

/* One (account, target) observation: Linker.observe's loop body. */
static int observe_target(Linker *l, PyObject *account, PyObject *ts_obj, double ts, PyObject *key, int strong) {
    PyObject *found = PyDict_GetItemWithError(l->targets, key);
    Target *target;
    if (found == NULL) {
        if (PyErr_Occurred()) return -1;
        target = target_alloc(&TargetType, NULL, NULL, 0, ts);
        if (target == NULL) return -1;
        if (PyODict_SetItem(l->targets, key, (PyObject *)target) < 0) goto fail;
        if (PyDict_GET_SIZE(l->targets) > l->max_targets && evict_oldest(l->targets, NULL) < 0) goto fail;
    } else {
        if (!PyObject_TypeCheck(found, &TargetType)) {
            PyErr_Format(PyExc_TypeError, "linker target %R is a %.100s, not a Target", key, Py_TYPE(found)->tp_name);
            return -1;
        }
        target = (Target *)Py_NewRef(found);
        if (move_to_end(l->targets, key) < 0) goto fail;
    }
    if (!(target->since > 0.0)) {
        target->since = ts;
    } else if (ts - target->since > l->period) { /* its count starts again: popularity decays */
        PyObject *empty = PyDict_New();
        if (empty == NULL) goto fail;
        Py_SETREF(target->accounts, empty);
        target->popular = 0;
        target->since = ts;
    }
    if (target->popular) goto done;
    if (target->accounts == NULL || target->recent == NULL || !PyDict_Check(target->accounts) ||
        !PyList_Check(target->recent)) { /* Linker.__setstate__ turns old checkpoints' deques into lists */
        PyErr_SetString(PyExc_TypeError, "a target needs a list of recent hits and a dict of accounts");
        goto fail;
    }
    PyObject *hits = target->accounts;
    long mine = hits_of(hits, account, 0);
    if (mine < 0) goto fail;
    mine += 1;
    PyObject *count = PyLong_FromLong(mine);
    if (count == NULL) goto fail;
    int rc = PyDict_SetItem(hits, account, count);
    Py_DECREF(count);
    if (rc < 0) goto fail;
    if (mine == 1 && PyDict_GET_SIZE(hits) > l->max_per_target * (strong ? 50 : 1)) {
        PyObject *empty = PyDict_New(); /* shared by too many: links nobody */
        if (empty == NULL) goto fail;
        target->popular = 1;
        Py_SETREF(target->accounts, empty);
        goto done;
    }
    if (strong) {
        PyObject *hub = PyUnicode_Concat(s_at, key);
        if (hub == NULL) goto fail;
        rc = add_link(l, account, hub, l->strong_weight, ts_obj, ts, 1, 1);
        Py_DECREF(hub);
        if (rc < 0) goto fail;
        goto done;
    }
    double weight = 1.0 / log2((double)(1 + PyDict_GET_SIZE(hits)));
    PyObject *recent = target->recent;
    while (PyList_GET_SIZE(recent) > 0) {
        PyObject *oldest = PyList_GET_ITEM(recent, 0);
        if (!PyTuple_Check(oldest) || PyTuple_GET_SIZE(oldest) != 2) {
            PyErr_SetString(PyExc_TypeError, "a target's recent hits must be (ts, account) tuples");
            goto fail;
        }
        double then = PyFloat_AsDouble(PyTuple_GET_ITEM(oldest, 0));
        if (then == -1.0 && PyErr_Occurred()) goto fail;
        if (!(ts - then > l->window)) break;
        if (PyList_SetSlice(recent, 0, 1, NULL) < 0) goto fail;
    }
    /* each other account once, in order of first appearance (dict.fromkeys) */
    PyObject *others[MAX_RECENT];
    Py_ssize_t n_others = 0, n_recent = PyList_GET_SIZE(recent);
    if (n_recent > MAX_RECENT) {
        PyErr_SetString(PyExc_ValueError, "a target remembers at most 256 recent hits");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n_recent; i++) {
        PyObject *hit = PyList_GET_ITEM(recent, i);
        if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 2) {
            PyErr_SetString(PyExc_TypeError, "a target's recent hits must be (ts, account) tuples");
            goto release;
        }
        PyObject *other = PyTuple_GET_ITEM(hit, 1);
        int same = PyObject_RichCompareBool(other, account, Py_EQ);
        for (Py_ssize_t j = 0; same == 0 && j < n_others; j++) same = PyObject_RichCompareBool(other, others[j], Py_EQ);
        if (same < 0) goto release;
        if (!same) others[n_others++] = Py_NewRef(other);
    }
    for (Py_ssize_t j = 0; j < n_others; j++) {
        long theirs = hits_of(hits, others[j], 1);
        if (theirs < 0) goto release;
        double similar = (double)(mine < theirs ? mine : theirs) / (double)(mine > theirs ? mine : theirs);
        if (add_link(l, account, others[j], weight * similar, ts_obj, ts, 0, 0) < 0) goto release;
    }
    for (Py_ssize_t j = 0; j < n_others; j++) Py_DECREF(others[j]);
    PyObject *hit = PyTuple_Pack(2, ts_obj, account);
    if (hit == NULL) goto fail;
    rc = PyList_Append(recent, hit);
    Py_DECREF(hit);
    if (rc < 0) goto fail;
    if (PyList_GET_SIZE(recent) > l->recent_per_target && PyList_SetSlice(recent, 0, 1, NULL) < 0) goto fail;
done:
    Py_DECREF(target);
    return 0;
release:
    for (Py_ssize_t j = 0; j < n_others; j++) Py_DECREF(others[j]);
fail:
    Py_DECREF(target);
    return -1;
}

PyDoc_STRVAR(observe_doc,
"observe(targets, links, linked, params, obs) -> None\n\n"
"Fold each ``(account, ts, [(target key, strong?), ...])`` of ``obs`` into the linker's ``targets`` and\n"
"``links`` (OrderedDicts) and ``linked`` (set), as ``clusters.Linker`` defines it. ``params`` is\n"
"(window_seconds, max_accounts_per_target, max_targets, recent_per_target, strong_weight,\n"
"half_life_seconds, link_threshold, max_links, target_period_seconds).");

static PyObject *observe(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyODict_CheckExact(args[0]) || !PyODict_CheckExact(args[1]) || !PySet_Check(args[2]) ||
        !PyTuple_Check(args[3]) || PyTuple_GET_SIZE(args[3]) != 9)
        return PyErr_Format(PyExc_TypeError, "observe(OrderedDict, OrderedDict, set, 9-tuple, obs)");
    PyObject *const *p = &PyTuple_GET_ITEM(args[3], 0);
    Linker l = {args[0], args[1], args[2]};
    l.window = PyFloat_AsDouble(p[0]);
    l.max_per_target = PyLong_AsSsize_t(p[1]);
    l.max_targets = PyLong_AsSsize_t(p[2]);
    l.recent_per_target = PyLong_AsSsize_t(p[3]);
    l.strong_weight = PyFloat_AsDouble(p[4]);
    l.half_life = PyFloat_AsDouble(p[5]);
    l.threshold = PyFloat_AsDouble(p[6]);
    l.max_links = PyLong_AsSsize_t(p[7]);
    l.period = PyFloat_AsDouble(p[8]);
    if (PyErr_Occurred()) return NULL;
    if (l.recent_per_target < 0 || l.recent_per_target >= MAX_RECENT)
        return PyErr_Format(PyExc_ValueError, "recent_per_target must be in [0, %d)", MAX_RECENT);
    PyObject *obs = PySequence_Fast(args[4], "observe: obs must be a sequence");
    if (obs == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(obs); i++) {
        PyObject *one = PySequence_Fast(PySequence_Fast_GET_ITEM(obs, i), "an observation is (account, ts, targets)");
        if (one == NULL) goto fail;
        if (PySequence_Fast_GET_SIZE(one) != 3) {
            PyErr_SetString(PyExc_ValueError, "an observation is (account, ts, targets)");
            Py_DECREF(one);
            goto fail;
        }
        PyObject *account = PySequence_Fast_GET_ITEM(one, 0), *ts_obj = PySequence_Fast_GET_ITEM(one, 1);
        double ts = PyFloat_AsDouble(ts_obj);
        PyObject *targets = ts == -1.0 && PyErr_Occurred()
                                ? NULL
                                : PySequence_Fast(PySequence_Fast_GET_ITEM(one, 2), "targets must be a sequence");
        int rc = targets == NULL ? -1 : 0;
        for (Py_ssize_t j = 0; rc == 0 && j < PySequence_Fast_GET_SIZE(targets); j++) {
            PyObject *pair = PySequence_Fast(PySequence_Fast_GET_ITEM(targets, j), "a target is (key, strong?)");
            if (pair == NULL || PySequence_Fast_GET_SIZE(pair) != 2) {
                if (pair != NULL) PyErr_SetString(PyExc_ValueError, "a target is (key, strong?)");
                Py_XDECREF(pair);
                rc = -1;
                break;
            }
            int strong = PyObject_IsTrue(PySequence_Fast_GET_ITEM(pair, 1));
            rc = strong < 0 ? -1
                            : observe_target(&l, account, ts_obj, ts, PySequence_Fast_GET_ITEM(pair, 0), strong);
            Py_DECREF(pair);
        }
        Py_XDECREF(targets);
        Py_DECREF(one);
        if (rc < 0) goto fail;
    }
    Py_DECREF(obs);
    Py_RETURN_NONE;
fail:
    Py_DECREF(obs);
    return NULL;
}


PyDoc_STRVAR(merge_doc,
"merge(links, linked, params, deltas) -> None\n\n"
"Fold link shards' ``[a, b, weight, last_ts, strong]`` deltas into ``links`` (OrderedDict) and ``linked``\n"
"(set), each as one more link update (``ValueError`` on a malformed delta); ``params`` as ``observe``'s.");

/* A delta's number: an int or a float, not a bool (they arrive over Kafka). */
static int delta_number(PyObject *o, double *out) {
    if (!(PyFloat_CheckExact(o) || PyLong_CheckExact(o))) return 0;
    *out = PyFloat_AsDouble(o);
    return !(*out == -1.0 && PyErr_Occurred());
}

static PyObject *merge(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyODict_CheckExact(args[0]) || !PySet_Check(args[1]) || !PyTuple_Check(args[2]) ||
        PyTuple_GET_SIZE(args[2]) != 9)
        return PyErr_Format(PyExc_TypeError, "merge(OrderedDict, set, 9-tuple, deltas)");
    PyObject *const *p = &PyTuple_GET_ITEM(args[2], 0);
    Linker l = {NULL, args[0], args[1]};
    l.half_life = PyFloat_AsDouble(p[5]);
    l.threshold = PyFloat_AsDouble(p[6]);
    l.max_links = PyLong_AsSsize_t(p[7]);
    if (PyErr_Occurred()) return NULL;
    PyObject *deltas = PySequence_Fast(args[3], "merge: deltas must be a sequence");
    if (deltas == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(deltas); i++) {
        PyObject *d = PySequence_Fast_GET_ITEM(deltas, i);
        double weight, last;
        PyObject *const *f = NULL;
        if ((PyList_CheckExact(d) || PyTuple_CheckExact(d)) && PySequence_Fast_GET_SIZE(d) == 5) {
            f = PySequence_Fast_ITEMS(d);
        }
        if (f == NULL || !PyUnicode_CheckExact(f[0]) || !PyUnicode_CheckExact(f[1]) || !PyBool_Check(f[4]) ||
            !delta_number(f[2], &weight) || !delta_number(f[3], &last) || !(weight >= 0.0)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a link delta must be [str, str, weight >= 0, seconds, bool]");
            goto fail;
        }
        int strong = f[4] == Py_True;
        PyObject *ts_obj = PyFloat_FromDouble(last);
        if (ts_obj == NULL) goto fail;
        int rc = add_link(&l, f[0], f[1], weight, ts_obj, last, strong, strong);
        Py_DECREF(ts_obj);
        if (rc < 0) goto fail;
    }
    Py_DECREF(deltas);
    Py_RETURN_NONE;
fail:
    Py_DECREF(deltas);
    return NULL;
}


/* ---- the targets of one event */

/* f"{name}:{value}" */
static int append_target(PyObject *out, PyObject *name, PyObject *value, PyObject *strong) {
    PyObject *text = PyUnicode_CheckExact(value) ? Py_NewRef(value) : PyObject_Format(value, NULL);
    if (text == NULL) return -1;
    PyObject *key;
    if (PyUnicode_READY(name) < 0 || PyUnicode_READY(text) < 0) {
        Py_DECREF(text);
        return -1;
    }
    if (PyUnicode_IS_ASCII(name) && PyUnicode_IS_ASCII(text)) { /* the usual case, without a format parse */
        Py_ssize_t n = PyUnicode_GET_LENGTH(name), t = PyUnicode_GET_LENGTH(text);
        key = PyUnicode_New(n + 1 + t, 127);
        if (key != NULL) {
            Py_UCS1 *out = PyUnicode_1BYTE_DATA(key);
            memcpy(out, PyUnicode_1BYTE_DATA(name), n);
            out[n] = ':';
            memcpy(out + n + 1, PyUnicode_1BYTE_DATA(text), t);
        }
    } else {
        key = PyUnicode_FromFormat("%U:%U", name, text);
    }
    Py_DECREF(text);
    if (key == NULL) return -1;
    PyObject *pair = PyTuple_Pack(2, key, strong);
    Py_DECREF(key);
    if (pair == NULL) return -1;
    int rc = PyList_Append(out, pair);
    Py_DECREF(pair);
    return rc;
}

PyDoc_STRVAR(targets_doc,
"targets(event, template, strong, soft) -> list[tuple[str, bool]]\n\n"
"clusters.cluster_targets in C: ``strong`` and ``soft`` are the names of the strong and the soft\n"
"targets, ``template`` the request's first template hash or None.");

static PyObject *targets(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyDict_Check(args[0]) || !PyTuple_Check(args[2]) || !PyTuple_Check(args[3]))
        return PyErr_Format(PyExc_TypeError, "targets(dict, int | None, tuple, tuple)");
    PyObject *event = args[0], *template = args[1], *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (int strong = 1; strong >= 0; strong--) {
        PyObject *names = args[strong ? 2 : 3];
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
            PyObject *name = PyTuple_GET_ITEM(names, i), *value;
            if (!PyUnicode_Check(name)) {
                PyErr_SetString(PyExc_TypeError, "targets: names must be str");
                goto fail;
            }
            if (!strong && PyUnicode_CompareWithASCIIString(name, "template") == 0) {
                value = template == Py_None ? NULL : template;
            } else if (!strong && PyUnicode_CompareWithASCIIString(name, "ip24") == 0) {
                PyObject *ip = PyDict_GetItemWithError(event, s_ip);
                if (ip == NULL && PyErr_Occurred()) goto fail;
                if (ip == NULL || !PyUnicode_Check(ip) || PyUnicode_READY(ip) < 0) continue; /* the contract: a str */
                Py_ssize_t n = PyUnicode_GET_LENGTH(ip), dots = 0, last = -1;
                int kind = PyUnicode_KIND(ip);
                const void *data = PyUnicode_DATA(ip);
                for (Py_ssize_t j = 0; j < n; j++)
                    if (PyUnicode_READ(kind, data, j) == '.') dots++, last = j;
                if (dots != 3) continue;
                PyObject *net = PyUnicode_Substring(ip, 0, last);
                if (net == NULL) goto fail;
                int rc = append_target(out, name, net, Py_False);
                Py_DECREF(net);
                if (rc < 0) goto fail;
                continue;
            } else {
                value = PyDict_GetItemWithError(event, name);
                if (value == NULL && PyErr_Occurred()) goto fail;
                if (value == Py_None) value = NULL; /* soft: present unless None; strong: set (truthy) */
                if (strong && value != NULL) {
                    int truthy = PyObject_IsTrue(value);
                    if (truthy < 0) goto fail;
                    if (!truthy) value = NULL;
                }
            }
            if (value != NULL && append_target(out, name, value, strong ? Py_True : Py_False) < 0) goto fail;
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}


/* ---- the components of the link graph at a tick */

/* Linker.clusters' find: the root of x's tree (a borrowed reference), halving the path on the way. */
static PyObject *find_root(PyObject *parent, PyObject *x) {
    for (;;) {
        PyObject *up = PyDict_SetDefault(parent, x, x);
        if (up == NULL) return NULL;
        int differs = PyObject_RichCompareBool(up, x, Py_NE);
        if (differs <= 0) return differs < 0 ? NULL : up;
        PyObject *grand = PyDict_GetItemWithError(parent, up);
        if (grand == NULL) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "%R", up);
            return NULL;
        }
        Py_INCREF(grand);
        int rc = PyDict_SetItem(parent, x, grand);
        Py_DECREF(grand); /* the dict holds it, as x's parent and as a key */
        if (rc < 0) return NULL;
        x = grand;
    }
}

static int is_hub(PyObject *node) {
    return PyUnicode_Check(node) && PyUnicode_GET_LENGTH(node) > 0 && PyUnicode_READ_CHAR(node, 0) == '@';
}

PyDoc_STRVAR(components_doc,
"components(links, linked, now, half_life, threshold) -> tuple[dict[str, tuple[list[str], list[str]]], set[str]]\n\n"
"``Linker.clusters``' union-find over the ``linked`` pairs whose link, decayed to ``now``, still reaches\n"
"``threshold`` (the others leave ``linked``): each component's root (its least node) -> (accounts, hubs\n"
"without their leading \"@\"), in order of first appearance, and the accounts joined to a hub.");

static PyObject *components(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyDict_Check(args[0]) || !PySet_Check(args[1]))
        return PyErr_Format(PyExc_TypeError, "components(dict, set, float, float, float)");
    PyObject *links = args[0], *linked = args[1];
    double now = PyFloat_AsDouble(args[2]), half_life = PyFloat_AsDouble(args[3]),
           threshold = PyFloat_AsDouble(args[4]);
    if (PyErr_Occurred()) return NULL;
    PyObject *pairs = PySequence_List(linked), *parent = PyDict_New(), *on_hub = PySet_New(NULL),
             *groups = PyDict_New(), *out = NULL;
    if (pairs == NULL || parent == NULL || on_hub == NULL || groups == NULL) goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        PyObject *link = PyDict_GetItemWithError(links, pair);
        if (link == NULL) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "%R", pair);
            goto done;
        }
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyList_Check(link) || PyList_GET_SIZE(link) != 3) {
            PyErr_SetString(PyExc_TypeError, "a linked pair must be a 2-tuple with a [weight, last_ts, strong] link");
            goto done;
        }
        double w = PyFloat_AsDouble(PyList_GET_ITEM(link, 0)), last = PyFloat_AsDouble(PyList_GET_ITEM(link, 1));
        if (PyErr_Occurred()) goto done;
        double since = now - last > 0.0 ? now - last : 0.0;
        if (w * pow(0.5, since / half_life) < threshold) { /* decayed: rejoins only if refreshed */
            if (PySet_Discard(linked, pair) < 0) goto done;
            continue;
        }
        PyObject *a = PyTuple_GET_ITEM(pair, 0), *b = PyTuple_GET_ITEM(pair, 1);
        PyObject *ra = find_root(parent, a);
        if (ra == NULL) goto done;
        Py_INCREF(ra);
        PyObject *rb = find_root(parent, b);
        if (rb == NULL) {
            Py_DECREF(ra);
            goto done;
        }
        Py_INCREF(rb);
        int differ = PyObject_RichCompareBool(ra, rb, Py_NE), less = differ > 0 ? PyObject_RichCompareBool(ra, rb, Py_LT) : 0;
        int rc = differ < 0 || less < 0 ? -1 : differ ? PyDict_SetItem(parent, less ? rb : ra, less ? ra : rb) : 0;
        Py_DECREF(ra);
        Py_DECREF(rb);
        if (rc < 0) goto done;
        if (is_hub(a) ? PySet_Add(on_hub, b) < 0 : is_hub(b) && PySet_Add(on_hub, a) < 0) goto done;
    }
    PyObject *node, *ignored;
    Py_ssize_t pos = 0;
    while (PyDict_Next(parent, &pos, &node, &ignored)) { /* finds rewrite values, never keys: safe */
        PyObject *root = find_root(parent, node);
        if (root == NULL) goto done;
        PyObject *group = PyDict_GetItemWithError(groups, root);
        if (group == NULL) {
            if (PyErr_Occurred()) goto done;
            group = Py_BuildValue("(NN)", PyList_New(0), PyList_New(0));
            if (group == NULL) goto done;
            int rc = PyDict_SetItem(groups, root, group);
            Py_DECREF(group);
            if (rc < 0) goto done;
        }
        int rc;
        if (is_hub(node)) {
            Py_ssize_t start = 0, n = PyUnicode_GET_LENGTH(node);
            while (start < n && PyUnicode_READ_CHAR(node, start) == '@') start++; /* str.lstrip("@") */
            PyObject *hub = PyUnicode_Substring(node, start, n);
            if (hub == NULL) goto done;
            rc = PyList_Append(PyTuple_GET_ITEM(group, 1), hub);
            Py_DECREF(hub);
        } else {
            rc = PyList_Append(PyTuple_GET_ITEM(group, 0), node);
        }
        if (rc < 0) goto done;
    }
    out = PyTuple_Pack(2, groups, on_hub);
done:
    Py_XDECREF(pairs);
    Py_XDECREF(parent);
    Py_XDECREF(on_hub);
    Py_XDECREF(groups);
    return out;
}

static PyMethodDef methods[] = {
    {"components", (PyCFunction)(void (*)(void))components, METH_FASTCALL, components_doc},
    {"merge", (PyCFunction)(void (*)(void))merge, METH_FASTCALL, merge_doc},
    {"observe", (PyCFunction)(void (*)(void))observe, METH_FASTCALL, observe_doc},
    {"targets", (PyCFunction)(void (*)(void))targets, METH_FASTCALL, targets_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_link", NULL, -1, methods};

PyMODINIT_FUNC PyInit__link(void) {
    s_move_to_end = PyUnicode_InternFromString("move_to_end");
    s_at = PyUnicode_InternFromString("@");
    s_ip = PyUnicode_InternFromString("ip");
    if (s_move_to_end == NULL || s_at == NULL || s_ip == NULL || PyType_Ready(&TargetType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Target", (PyObject *)&TargetType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

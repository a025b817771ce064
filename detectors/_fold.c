/* Folding one request into an account's packed state, in place, in C.
 *
 * The packed state (detectors/account_state.py, ~900 bytes) is the account's only representation: the
 * engine keeps it as a bytearray, this folds each request into it, and Python reads it (at scoring
 * ticks) through AccountState's fixed-offset fields. The offsets below are exported as LAYOUT and
 * account_state.py refuses to import if they differ from its own layout.
 *
 * What the fold and its readers compute is defined in Python by detectors/reference/fold.py, operation
 * for operation; tests/detectors/test_accelerators.py checks both give the same bytes and values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_murmur3.h"

/* The fixed part, as detectors/reference/fold.py declares it (LAYOUT_FORMATS); compared at import. */
#define OFF_VERSION 0
#define OFF_FIRST_TS 1
#define OFF_LAST_TS 9
#define OFF_CREATED_TS 17
#define OFF_LAST_SCORED 25
#define OFF_DECAY_TS 33
#define OFF_ACTION_LEVEL 41
#define OFF_ACTION_EXPIRES 42
#define OFF_HEAD 50
#define OFF_HOUR_HEAD 54
#define OFF_HOUR_MASK 58
#define OFF_GAP_MEAN 62
#define OFF_GAP_VAR 66
#define OFF_DRIFT 70 /* four floats: n, mean, cumulative, minimum */
#define OFF_DRIFT_TS 86
#define OFF_RUNG_SINCE 94 /* event time the action in force reached its rung (escalation on persistence) */
#define OFF_SOURCE_PARTITION 102 /* where the last folded event came from (int32, int64): replays skip it */
#define OFF_SOURCE_OFFSET 106
/* float32 arrays */
#define N_COUNTERS 9
#define N_CATEGORIES 8
#define HH_SLOTS 8
#define OFF_COUNTERS 114
#define OFF_CATEGORIES (OFF_COUNTERS + 4 * N_COUNTERS)
#define OFF_HH_COUNTS (OFF_CATEGORIES + 4 * N_CATEGORIES)
#define OFF_HH_ERRORS (OFF_HH_COUNTS + 4 * HH_SLOTS)
/* uint32 arrays (0xFFFFFFFF marks an empty slot) */
#define TEMPLATE_K 16
#define IP_K 8
#define UA_K 8
#define OFF_HH_KEYS (OFF_HH_ERRORS + 4 * HH_SLOTS)
#define OFF_TEMPLATES (OFF_HH_KEYS + 4 * HH_SLOTS)
#define OFF_IPS (OFF_TEMPLATES + 4 * TEMPLATE_K)
#define OFF_UAS (OFF_IPS + 4 * IP_K)
#define OFF_RINGS (OFF_UAS + 4 * UA_K) /* requests (u16 × n), CoT requests (u16 × n), tokens (u32 × n) */

/* Counters, in the order of account_state.Counters */
enum { REQUESTS, COT, ROLE, SINGLE_TURN, MAX_HIGH, NEW_MODEL, RATIO, TOOLS, THINKING };
/* bits of the ``flags`` argument: the boolean counters, in Counters order from ROLE */
#define FLAG_ROLE 1
#define FLAG_SINGLE_TURN 2
#define FLAG_MAX_HIGH 4
#define FLAG_NEW_MODEL 8
#define FLAG_TOOLS 16
#define FLAG_THINKING 32

#define EMPTY 0xFFFFFFFFu
#define HOURS 24
#define GAP_ALPHA 0.05
#define SESSION_GAP 1800.0
#define DECAY_EVERY 60.0

/* Unaligned reads and writes of the packed fields (little-endian hosts). */
#define GETTER(name, type) \
    static inline type get_##name(const unsigned char *b, Py_ssize_t off) { type v; memcpy(&v, b + off, sizeof v); return v; } \
    static inline void put_##name(unsigned char *b, Py_ssize_t off, type v) { memcpy(b + off, &v, sizeof v); }
GETTER(f64, double)
GETTER(f32, float)
GETTER(i32, int32_t)
GETTER(u32, uint32_t)
GETTER(u16, uint16_t)

static void scale_floats(unsigned char *b, Py_ssize_t off, int n, double factor) {
    for (int i = 0; i < n; i++) put_f32(b, off + 4 * i, (float)(get_f32(b, off + 4 * i) * factor));
}

static void add_f32(unsigned char *b, Py_ssize_t off, double x) { put_f32(b, off, (float)(get_f32(b, off) + x)); }

/* Lazy exponential decay, at most once a minute of event time: hot accounts pay nothing per event. */
static void decay(unsigned char *b, double ts, double half_life) {
    double elapsed = ts - get_f64(b, OFF_DECAY_TS);
    if (elapsed < DECAY_EVERY) return;
    double factor = pow(0.5, elapsed / half_life);
    scale_floats(b, OFF_COUNTERS, N_COUNTERS + N_CATEGORIES + 2 * HH_SLOTS, factor); /* contiguous */
    put_f64(b, OFF_DECAY_TS, ts);
}

/* Python's float floor division (CPython's float_floor_div), so that C and Python put a moment in the
 * same bucket and hour even at boundaries where floor(a / b) would round the other way. */
static double py_floordiv(double vx, double wx) {
    double mod = fmod(vx, wx), div = (vx - mod) / wx;
    if (mod && ((wx < 0) != (mod < 0))) div -= 1.0;
    if (!div) return copysign(0.0, vx / wx);
    double floordiv = floor(div);
    return div - floordiv > 0.5 ? floordiv + 1.0 : floordiv;
}

/* The one-hour ring of buckets: requests, CoT requests and output tokens per bucket. */
static void ring_add(unsigned char *b, double ts, int cot, long long tokens, int n, double bucket_seconds) {
    const Py_ssize_t req = OFF_RINGS, cots = OFF_RINGS + 2 * n, tok = OFF_RINGS + 4 * n;
    long long index = (long long)py_floordiv(ts, bucket_seconds); /* as every reader floors it */
    long long head = get_i32(b, OFF_HEAD);
    if (index > head) {
        if (head < 0 || index - head >= n) {
            memset(b + OFF_RINGS, 0, (size_t)(8 * n));
        } else {
            Py_ssize_t slot = (Py_ssize_t)((head + 1) % n);
            for (long long i = head + 1; i <= index; i++) {
                put_u16(b, req + 2 * slot, 0);
                put_u16(b, cots + 2 * slot, 0);
                put_u32(b, tok + 4 * slot, 0);
                if (++slot == n) slot = 0;
            }
        }
        put_i32(b, OFF_HEAD, (int32_t)index);
        head = index;
    } else if (index <= head - n) {
        return; /* older than the ring */
    }
    Py_ssize_t slot = (Py_ssize_t)(((index % n) + n) % n);
    uint16_t requests = get_u16(b, req + 2 * slot);
    if (requests < 0xFFFF) {
        put_u16(b, req + 2 * slot, (uint16_t)(requests + 1));
        put_u16(b, cots + 2 * slot, (uint16_t)(get_u16(b, cots + 2 * slot) + (cot ? 1 : 0)));
    }
    unsigned long long total = (unsigned long long)get_u32(b, tok + 4 * slot) + (unsigned long long)(tokens > 0 ? tokens : 0);
    put_u32(b, tok + 4 * slot, total > EMPTY ? EMPTY : (uint32_t)total);
}

/* Which of the last 24 hours saw a request: bit ``age`` of the mask, age 0 = the newest hour. */
static void hours_add(unsigned char *b, double ts) {
    long long hour = (long long)py_floordiv(ts, 3600.0);
    long long hour_head = get_i32(b, OFF_HOUR_HEAD);
    uint32_t mask = get_u32(b, OFF_HOUR_MASK);
    if (hour > hour_head) {
        long long shift = hour_head >= 0 ? hour - hour_head : HOURS;
        mask = shift >= HOURS ? 0 : (uint32_t)((mask << shift) & ((1u << HOURS) - 1));
        put_i32(b, OFF_HOUR_HEAD, (int32_t)hour);
        hour_head = hour;
    }
    long long age = hour_head - hour;
    if (age >= 0 && age < HOURS) mask |= 1u << age;
    put_u32(b, OFF_HOUR_MASK, mask);
}

/* Running mean and variance of inter-arrival gaps within sessions (exponentially weighted). */
static void gap_add(unsigned char *b, double gap) {
    if (gap > SESSION_GAP) return;
    double mean = get_f32(b, OFF_GAP_MEAN), var = get_f32(b, OFF_GAP_VAR);
    if (mean == 0.0) {
        put_f32(b, OFF_GAP_MEAN, (float)gap);
        return;
    }
    double diff = gap - mean;
    put_f32(b, OFF_GAP_MEAN, (float)(mean + GAP_ALPHA * diff));
    put_f32(b, OFF_GAP_VAR, (float)((1 - GAP_ALPHA) * (var + GAP_ALPHA * diff * diff)));
}

/* Space-saving heavy hitters of template hashes; a slot is in use while its count is > 0. */
static void hh_add(unsigned char *b, uint32_t key) {
    int empty = -1, smallest = -1;
    float smallest_count = 0.0f;
    for (int i = 0; i < HH_SLOTS; i++) {
        float count = get_f32(b, OFF_HH_COUNTS + 4 * i);
        if (count <= 0.0f) {
            if (empty < 0) empty = i;
            continue;
        }
        if (get_u32(b, OFF_HH_KEYS + 4 * i) == key) {
            put_f32(b, OFF_HH_COUNTS + 4 * i, count + 1.0f);
            return;
        }
        if (smallest < 0 || count < smallest_count) {
            smallest = i;
            smallest_count = count;
        }
    }
    if (empty >= 0) {
        put_u32(b, OFF_HH_KEYS + 4 * empty, key);
        put_f32(b, OFF_HH_COUNTS + 4 * empty, 1.0f);
        put_f32(b, OFF_HH_ERRORS + 4 * empty, 0.0f);
    } else { /* the new key takes the smallest slot; what it inherits is its error bound */
        put_u32(b, OFF_HH_KEYS + 4 * smallest, key);
        put_f32(b, OFF_HH_COUNTS + 4 * smallest, smallest_count + 1.0f);
        put_f32(b, OFF_HH_ERRORS + 4 * smallest, smallest_count);
    }
}

/* Keep the k smallest distinct hashes, sorted, empty slots (0xFFFFFFFF) last: a KMV sketch. */
static void bottom_k_add(unsigned char *b, Py_ssize_t off, int k, uint32_t h) {
    if (h >= get_u32(b, off + 4 * (k - 1))) return;
    int i = 0;
    while (i < k && get_u32(b, off + 4 * i) < h) i++;
    if (get_u32(b, off + 4 * i) == h) return;
    memmove(b + off + 4 * (i + 1), b + off + 4 * i, (size_t)(4 * (k - 1 - i)));
    put_u32(b, off + 4 * i, h);
}

enum { HEADER_ONLY, WITH_RING }; /* what a caller of state_arg reads: the fixed fields only, or the ring too */

/* The packed state in argument ``arg`` (``flags``: PyBUF_WRITABLE when it is updated), or NULL with an
 * exception set: one reading the ring must be exactly the size for ``n`` buckets, one reading only the
 * fixed fields at least that long. The caller releases ``buf``. */
static unsigned char *state_arg(PyObject *arg, Py_buffer *buf, int flags, int reads, int n) {
    if (PyObject_GetBuffer(arg, buf, flags) < 0) return NULL;
    if (reads == WITH_RING ? n <= 0 || buf->len != OFF_RINGS + 8 * n : buf->len < OFF_RINGS) {
        PyBuffer_Release(buf);
        if (reads == WITH_RING) PyErr_Format(PyExc_ValueError, "not a packed state for %d buckets", n);
        else PyErr_SetString(PyExc_ValueError, "not a packed state");
        return NULL;
    }
    return buf->buf;
}

static int hash_text(PyObject *text, uint32_t *out) {
    if (text == Py_None) return 0;
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &len);
    if (utf8 == NULL) return -1;
    if (len == 0) return 0;
    *out = (uint32_t)murmur3_32((const unsigned char *)utf8, len);
    return 1;
}

PyDoc_STRVAR(fold_doc,
"fold(state, ts, cot, ratio, flags, category, template0, template1, output_tokens, ip, user_agent,\n"
"     buckets, bucket_seconds, half_life_seconds) -> float\n\n"
"Fold one request into the packed ``state`` (a bytearray) in place; see AccountState.add. Returns the\n"
"decayed request count after it (what decides whether the account is scored).");

/* An int argument as ``i`` would read it: OverflowError outside C's int. */
static int int_arg(PyObject *arg, int *out) {
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "signed integer is greater than maximum");
        return -1;
    }
    *out = (int)v;
    return 0;
}

static PyObject *fold(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    /* Called once per event: arguments read directly (PyArg_ParseTuple parsing 14 of them by format cost
     * more than the fold itself). */
    if (nargs != 14) return PyErr_Format(PyExc_TypeError, "fold() takes 14 arguments");
    double ts = PyFloat_AsDouble(args[1]), cot = PyFloat_AsDouble(args[2]), ratio = PyFloat_AsDouble(args[3]);
    double bucket_seconds = PyFloat_AsDouble(args[12]), half_life = PyFloat_AsDouble(args[13]);
    if (PyErr_Occurred()) return NULL;
    int flags, category, buckets;
    if (int_arg(args[4], &flags) < 0 || int_arg(args[5], &category) < 0 || int_arg(args[11], &buckets) < 0) return NULL;
    long long template0 = PyLong_AsLongLong(args[6]), template1 = PyLong_AsLongLong(args[7]);
    long long tokens = PyLong_AsLongLong(args[8]);
    if (PyErr_Occurred()) return NULL;
    PyObject *ip = args[9], *ua = args[10];
    if (category < 0 || category >= N_CATEGORIES) return PyErr_Format(PyExc_ValueError, "category out of range");
    if (!(ip == Py_None || PyUnicode_Check(ip)) || !(ua == Py_None || PyUnicode_Check(ua)))
        return PyErr_Format(PyExc_TypeError, "ip and user_agent must be str or None");
    Py_buffer buf;
    unsigned char *b = state_arg(args[0], &buf, PyBUF_WRITABLE, WITH_RING, buckets);
    if (b == NULL) return NULL;
    if (get_f64(b, OFF_FIRST_TS) == 0.0) {
        put_f64(b, OFF_FIRST_TS, ts);
        put_f64(b, OFF_DECAY_TS, ts);
    }
    decay(b, ts, half_life);
    ring_add(b, ts, cot > 0, tokens, buckets, bucket_seconds);
    hours_add(b, ts);
    double last_ts = get_f64(b, OFF_LAST_TS);
    if (ts > last_ts) {
        if (last_ts != 0.0) gap_add(b, ts - last_ts);
        put_f64(b, OFF_LAST_TS, ts);
    }
    add_f32(b, OFF_COUNTERS + 4 * REQUESTS, 1.0);
    add_f32(b, OFF_COUNTERS + 4 * COT, cot);
    add_f32(b, OFF_COUNTERS + 4 * RATIO, isfinite(ratio) ? ratio : 0.0);
    static const int boolean_counters[][2] = {{FLAG_ROLE, ROLE}, {FLAG_SINGLE_TURN, SINGLE_TURN}, {FLAG_MAX_HIGH, MAX_HIGH},
                                              {FLAG_NEW_MODEL, NEW_MODEL}, {FLAG_TOOLS, TOOLS}, {FLAG_THINKING, THINKING}};
    for (size_t i = 0; i < sizeof boolean_counters / sizeof boolean_counters[0]; i++)
        if (flags & boolean_counters[i][0]) add_f32(b, OFF_COUNTERS + 4 * boolean_counters[i][1], 1.0);
    add_f32(b, OFF_CATEGORIES + 4 * category, 1.0);
    if (template0 >= 0) {
        hh_add(b, (uint32_t)template0);
        bottom_k_add(b, OFF_TEMPLATES, TEMPLATE_K, (uint32_t)template0);
    }
    if (template1 >= 0) hh_add(b, (uint32_t)template1);
    uint32_t h;
    int rc = hash_text(ip, &h);
    if (rc > 0) bottom_k_add(b, OFF_IPS, IP_K, h);
    if (rc >= 0 && (rc = hash_text(ua, &h)) > 0) bottom_k_add(b, OFF_UAS, UA_K, h);
    double requests = get_f32(b, OFF_COUNTERS + 4 * REQUESTS);
    PyBuffer_Release(&buf);
    if (rc < 0) return NULL;
    return PyFloat_FromDouble(requests);
}

typedef struct {
    long long requests, tokens, burst;
} hour_window;

/* The ring's hour ending at bucket ``index``. */
static hour_window ring_window(const unsigned char *b, long long index, int n) {
    hour_window w = {0, 0, 0};
    long long head = get_i32(b, OFF_HEAD);
    if (head >= 0 && index - head < n) {
        long long oldest = (head > index ? head : index) - n + 1, newest = index < head ? index : head;
        Py_ssize_t slot = (Py_ssize_t)(((oldest % n) + n) % n); /* one division, not two per bucket */
        for (long long i = oldest; i <= newest; i++) {
            long long r = get_u16(b, OFF_RINGS + 2 * slot);
            w.requests += r;
            w.tokens += get_u32(b, OFF_RINGS + 4 * n + 4 * slot);
            if (r > w.burst) w.burst = r;
            if (++slot == n) slot = 0;
        }
    }
    return w;
}

/* The heavy hitter with the largest guaranteed count (count minus overestimate): its slot, or -1. */
static int top_slot(const unsigned char *b, double *guaranteed) {
    int best = -1;
    *guaranteed = 0.0;
    for (int i = 0; i < HH_SLOTS; i++) {
        double count = get_f32(b, OFF_HH_COUNTS + 4 * i), g = count - get_f32(b, OFF_HH_ERRORS + 4 * i);
        if (count > 0 && (best < 0 || g > *guaranteed)) {
            best = i;
            *guaranteed = g;
        }
    }
    return best;
}

PyDoc_STRVAR(page_hinkley_doc,
"page_hinkley(state, x, min_instances, delta, threshold, alpha) -> bool\n\n"
"Fold ``x`` into the account's Page-Hinkley detector (mode \"up\", River's arithmetic step for step;\n"
"see drift.py); True when the stream's mean has risen, and the detector restarts.");

static PyObject *page_hinkley(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) return PyErr_Format(PyExc_TypeError, "page_hinkley() takes 6 arguments");
    double x = PyFloat_AsDouble(args[1]), min_instances = PyFloat_AsDouble(args[2]);
    double delta = PyFloat_AsDouble(args[3]), threshold = PyFloat_AsDouble(args[4]), alpha = PyFloat_AsDouble(args[5]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer buf;
    unsigned char *b = state_arg(args[0], &buf, PyBUF_WRITABLE, HEADER_ONLY, 0);
    if (b == NULL) return NULL;
    /* River's n, _x_mean, _sum_increase, _min_increase; float32 at rest, double while computing */
    double n = get_f32(b, OFF_DRIFT) + 1.0, mean = get_f32(b, OFF_DRIFT + 4);
    double cumulative = get_f32(b, OFF_DRIFT + 8), minimum = get_f32(b, OFF_DRIFT + 12);
    mean += (x - mean) / n;
    cumulative = alpha * cumulative + (x - mean) - delta;
    if (cumulative < minimum) minimum = cumulative;
    int detected = n >= min_instances && cumulative - minimum > threshold;
    if (detected) n = mean = cumulative = 0.0, minimum = INFINITY;
    put_f32(b, OFF_DRIFT, (float)n);
    put_f32(b, OFF_DRIFT + 4, (float)mean);
    put_f32(b, OFF_DRIFT + 8, (float)cumulative);
    put_f32(b, OFF_DRIFT + 12, (float)minimum);
    PyBuffer_Release(&buf);
    return PyBool_FromLong(detected);
}

PyDoc_STRVAR(window_doc,
"window(state, now_index, buckets) -> tuple[int, int, int]\n\n"
"Requests, output tokens and the busiest bucket's requests in the hour of the ring ending at bucket\n"
"``now_index`` (AccountState.window).");

static PyObject *window(PyObject *self, PyObject *args) {
    Py_buffer buf;
    PyObject *state;
    long long index;
    int n;
    if (!PyArg_ParseTuple(args, "OLi", &state, &index, &n)) return NULL;
    const unsigned char *b = state_arg(state, &buf, PyBUF_SIMPLE, WITH_RING, n);
    if (b == NULL) return NULL;
    hour_window w = ring_window(b, index, n);
    PyBuffer_Release(&buf);
    return Py_BuildValue("LLL", w.requests, w.tokens, w.burst);
}

/* The window vector (scoring.account_vector): names in VECTOR_FEATURES order. */
static const char *const vector_names[] = {
    "volume", "burst", "tokens", "cot_rate", "role_rate", "template_top", "focus", "ratio", "single_turn",
    "max_tokens_high", "regularity", "always_on", "ip_spread", "ua_spread", "new_account", "new_model",
    "tools", "drift",
};
#define N_VECTOR (sizeof vector_names / sizeof vector_names[0])
enum { P_BUCKETS, P_BUCKET_SECONDS, P_PRIOR, P_REQUESTS_CAP, P_BURST_CAP, P_TOKENS_CAP, P_RATIO_CAP, P_IPS_CAP,
       P_UAS_CAP, P_NEW_ACCOUNT_SECONDS, P_DRIFT_MEMORY, N_PARAMS };

static double log_scaled(double value, double cap) {
    double r = log1p(value > 0.0 ? value : 0.0) / log1p(cap);
    return r < 1.0 ? r : 1.0;
}

static double capped_share(double value, double cap) { return value / cap < 1.0 ? value / cap : 1.0; }

/* Distinct values in a bottom-k sketch: exact below k, else (k - 1) / (k-th smallest hash as a fraction). */
static double bottom_k_estimate(const unsigned char *b, Py_ssize_t off, int k) {
    int used = 0;
    while (used < k && get_u32(b, off + 4 * used) != EMPTY) used++;
    if (used < k) return (double)used;
    return (double)(k - 1) / (((double)get_u32(b, off + 4 * (k - 1)) + 1.0) / 4294967296.0);
}

PyDoc_STRVAR(vector_doc,
"vector(state, now, buckets, bucket_seconds, share_prior, requests_per_hour_cap, burst_per_minute_cap,\n"
"       output_tokens_per_hour_cap, ratio_cap, distinct_ips_cap, distinct_uas_cap, new_account_seconds,\n"
"       drift_memory_seconds) -> tuple[float, ...]\n\n"
"The account's window vector at ``now``, in VECTOR_FEATURES order (scoring.account_vector says what\n"
"each feature is; tests/detectors/test_scoring.py holds their definition in Python).");

static PyObject *vector(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 + N_PARAMS) return PyErr_Format(PyExc_TypeError, "vector() takes %d arguments", 2 + N_PARAMS);
    double now = PyFloat_AsDouble(args[1]), p[N_PARAMS];
    for (int i = 0; i < N_PARAMS; i++) p[i] = PyFloat_AsDouble(args[2 + i]);
    if (PyErr_Occurred()) return NULL;
    int n = (int)p[P_BUCKETS];
    Py_buffer buf;
    const unsigned char *b = state_arg(args[0], &buf, PyBUF_SIMPLE, WITH_RING, n);
    if (b == NULL) return NULL;

    double c[N_COUNTERS], cats[N_CATEGORIES];
    for (int i = 0; i < N_COUNTERS; i++) c[i] = get_f32(b, OFF_COUNTERS + 4 * i);
    for (int i = 0; i < N_CATEGORIES; i++) cats[i] = get_f32(b, OFF_CATEGORIES + 4 * i);
    double requests = c[REQUESTS], shrunk = requests + p[P_PRIOR];
    double total = 0.0, entropy = 0.0;
    for (int i = 0; i < N_CATEGORIES; i++) if (cats[i] > 0) total += cats[i];
    if (total > 0)
        for (int i = 0; i < N_CATEGORIES; i++) if (cats[i] > 0) entropy += cats[i] / total * log(cats[i] / total);
    hour_window hour = ring_window(b, (long long)py_floordiv(now, p[P_BUCKET_SECONDS]), n);
    double guaranteed, gap_mean = get_f32(b, OFF_GAP_MEAN), gap_var = get_f32(b, OFF_GAP_VAR);
    int top = top_slot(b, &guaranteed);
    double gap_cv = gap_mean > 0 ? pow(gap_var, 0.5) / gap_mean : 1.0;
    long long hour_head = get_i32(b, OFF_HOUR_HEAD), behind = (long long)py_floordiv(now, 3600.0) - hour_head;
    int active_hours = 0;
    if (behind < HOURS && hour_head >= 0)
        active_hours = __builtin_popcount((get_u32(b, OFF_HOUR_MASK) << (behind > 0 ? behind : 0)) & ((1u << HOURS) - 1));
    double created = get_f64(b, OFF_CREATED_TS), age = now - (created ? created : get_f64(b, OFF_FIRST_TS));
    double new_account = 1.0 - age / p[P_NEW_ACCOUNT_SECONDS], drift_ts = get_f64(b, OFF_DRIFT_TS);
    double x[N_VECTOR] = {
        log_scaled((double)hour.requests, p[P_REQUESTS_CAP]),
        log_scaled((double)hour.burst, p[P_BURST_CAP]),
        log_scaled((double)hour.tokens, p[P_TOKENS_CAP]),
        c[COT] / shrunk,
        c[ROLE] / shrunk,
        top < 0 || shrunk <= 0 ? 0.0 : (guaranteed / shrunk < 1.0 ? guaranteed / shrunk : 1.0),
        total > 0 ? 1.0 - (-entropy) / log((double)N_CATEGORIES) : 0.0,
        log_scaled(requests > 0 ? c[RATIO] / requests : 0.0, p[P_RATIO_CAP]),
        c[SINGLE_TURN] / shrunk,
        c[MAX_HIGH] / shrunk,
        requests >= 3 ? 1.0 / (1.0 + gap_cv) : 0.0,
        active_hours / 24.0,
        capped_share(bottom_k_estimate(b, OFF_IPS, IP_K), p[P_IPS_CAP]),
        capped_share(bottom_k_estimate(b, OFF_UAS, UA_K), p[P_UAS_CAP]),
        new_account > 0.0 ? (new_account < 1.0 ? new_account : 1.0) : 0.0, /* a late event can predate the account */
        c[NEW_MODEL] / shrunk,
        c[TOOLS] / shrunk,
        drift_ts && now - drift_ts < p[P_DRIFT_MEMORY] ? 1.0 : 0.0,
    };
    PyBuffer_Release(&buf);
    PyObject *out = PyTuple_New(N_VECTOR);
    if (out == NULL) return NULL;
    for (size_t i = 0; i < N_VECTOR; i++) {
        PyObject *v = PyFloat_FromDouble(x[i]);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

PyDoc_STRVAR(summary_doc,
"summary(state, now, buckets, bucket_seconds, account_type) -> list\n\n"
"What the cluster stage needs of the account at ``now``, as the list of clusters.MemberSummary's fields\n"
"(JSON-ready): last_ts, requests_last_hour, requests, cot, new_model, top_template | None,\n"
"account_type, first_ts, tokens_last_hour.");

static PyObject *summary(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) return PyErr_Format(PyExc_TypeError, "summary() takes 5 arguments");
    double now = PyFloat_AsDouble(args[1]), bucket_seconds = PyFloat_AsDouble(args[3]);
    int n;
    if (int_arg(args[2], &n) < 0) return NULL;
    Py_buffer buf;
    const unsigned char *b = state_arg(args[0], &buf, PyBUF_SIMPLE, WITH_RING, n);
    if (b == NULL) return NULL;
    hour_window hour = ring_window(b, (long long)py_floordiv(now, bucket_seconds), n);
    double guaranteed;
    int top = top_slot(b, &guaranteed);
    PyObject *items[9] = {
        PyFloat_FromDouble(get_f64(b, OFF_LAST_TS)),
        PyLong_FromLongLong(hour.requests),
        PyFloat_FromDouble((double)get_f32(b, OFF_COUNTERS + 4 * REQUESTS)),
        PyFloat_FromDouble((double)get_f32(b, OFF_COUNTERS + 4 * COT)),
        PyFloat_FromDouble((double)get_f32(b, OFF_COUNTERS + 4 * NEW_MODEL)),
        top < 0 ? Py_NewRef(Py_None) : PyLong_FromUnsignedLong(get_u32(b, OFF_HH_KEYS + 4 * top)),
        Py_NewRef(args[4]),
        PyFloat_FromDouble(get_f64(b, OFF_FIRST_TS)),
        PyLong_FromLongLong(hour.tokens),
    }; /* built directly: Py_BuildValue's format parse was a third of the call */
    PyBuffer_Release(&buf);
    PyObject *out = PyList_New(9);
    for (int i = 0; i < 9; i++) {
        if (items[i] == NULL || out == NULL) {
            for (int j = 0; j < 9; j++) Py_XDECREF(items[j]);
            Py_XDECREF(out);
            return NULL;
        }
    }
    for (int i = 0; i < 9; i++) PyList_SET_ITEM(out, i, items[i]);
    return out;
}

PyDoc_STRVAR(top_template_doc,
"top_template(state) -> tuple[int, float] | None\n\n"
"The heavy hitter with the largest guaranteed count (count minus overestimate) and that count.");

static PyObject *top_template(PyObject *self, PyObject *args) {
    Py_buffer buf;
    PyObject *state;
    if (!PyArg_ParseTuple(args, "O", &state)) return NULL;
    const unsigned char *b = state_arg(state, &buf, PyBUF_SIMPLE, HEADER_ONLY, 0);
    if (b == NULL) return NULL;
    double guaranteed;
    int best = top_slot(b, &guaranteed);
    uint32_t key = best >= 0 ? get_u32(b, OFF_HH_KEYS + 4 * best) : 0;
    PyBuffer_Release(&buf);
    if (best < 0) Py_RETURN_NONE;
    return Py_BuildValue("kd", (unsigned long)key, guaranteed);
}

static PyMethodDef methods[] = {
    {"fold", (PyCFunction)(void (*)(void))fold, METH_FASTCALL, fold_doc},
    {"window", window, METH_VARARGS, window_doc},
    {"top_template", top_template, METH_VARARGS, top_template_doc},
    {"vector", (PyCFunction)(void (*)(void))vector, METH_FASTCALL, vector_doc},
    {"summary", (PyCFunction)(void (*)(void))summary, METH_FASTCALL, summary_doc},
    {"page_hinkley", (PyCFunction)(void (*)(void))page_hinkley, METH_FASTCALL, page_hinkley_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "detectors._fold", "The per-request fold of packed account state (see account_state.py).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__fold(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *layout = Py_BuildValue(
        "{sisisisisisisisisisisisisisisisisisisisisisisisisisisisi}", "version", OFF_VERSION, "first_ts", OFF_FIRST_TS,
        "last_ts", OFF_LAST_TS, "created_ts", OFF_CREATED_TS, "last_scored", OFF_LAST_SCORED, "decay_ts", OFF_DECAY_TS,
        "action_level", OFF_ACTION_LEVEL, "action_expires", OFF_ACTION_EXPIRES, "head", OFF_HEAD, "hour_head",
        OFF_HOUR_HEAD, "hour_mask", OFF_HOUR_MASK, "gap_mean", OFF_GAP_MEAN, "gap_var", OFF_GAP_VAR, "drift",
        OFF_DRIFT, "drift_ts", OFF_DRIFT_TS, "rung_since", OFF_RUNG_SINCE, "source_partition", OFF_SOURCE_PARTITION, "source_offset", OFF_SOURCE_OFFSET, "counters", OFF_COUNTERS, "categories", OFF_CATEGORIES, "hh_counts",
        OFF_HH_COUNTS, "hh_errors", OFF_HH_ERRORS, "hh_keys", OFF_HH_KEYS, "templates", OFF_TEMPLATES, "ips", OFF_IPS,
        "uas", OFF_UAS, "rings", OFF_RINGS, "template_k", TEMPLATE_K);
    if (layout == NULL || PyModule_AddObject(m, "LAYOUT", layout) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *names = PyTuple_New(N_VECTOR);
    for (size_t i = 0; names != NULL && i < N_VECTOR; i++) {
        PyObject *name = PyUnicode_FromString(vector_names[i]);
        if (name == NULL) Py_CLEAR(names);
        else PyTuple_SET_ITEM(names, i, name);
    }
    if (names == NULL || PyModule_AddObject(m, "VECTOR_FEATURES", names) < 0) {
        Py_XDECREF(names);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

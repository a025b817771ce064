/* The extraction-intent model's hot path in C: normalizing a cut, hashing its byte n-grams and words,
 * and the model's logit. detectors/intent.py defines each (normalize_reference, grams_reference and
 * IntentModel.score_text's Python branch); tests/detectors/test_intent.py pins this file to them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL
#define FNV_OFFSET 0xCBF29CE484222325ULL
#define FNV_PRIME 0x100000001B3ULL
#define SEED_CHAR 0x51ED27ULL
#define SEED_WORD 0x2545F491ULL
#define SEED_BIGRAM 0x6C8E9CF5ULL

static inline uint32_t mix(uint64_t x, int bits) { return (uint32_t)((x * GOLDEN) >> (64 - bits)); }

static inline int word_byte(unsigned char b) {
    return b >= 0x80 || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9');
}

PyDoc_STRVAR(normalize_doc,
"normalize(raw: bytes) -> bytes\n\n"
"Digits masked to '0', each run of other ASCII bytes one space, a space at each end (bytes >= 0x80 kept).");

static PyObject *normalize(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "normalize() takes bytes");
        return NULL;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(arg);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n + 2);
    if (out == NULL) return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    Py_ssize_t k = 0;
    o[k++] = ' ';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char b = in[i];
        if (word_byte(b)) o[k++] = (b >= '0' && b <= '9') ? '0' : b;
        else if (o[k - 1] != ' ') o[k++] = ' ';
    }
    if (o[k - 1] != ' ') o[k++] = ' ';
    if (_PyBytes_Resize(&out, k) < 0) return NULL;
    return out;
}

/* EACH_GRAM(t, n, bits, VISIT): runs VISIT(bucket) for every feature of the normalized text, in
 * grams_reference's order (byte 3-grams, 4-grams, 5-grams by position, then words, then bigrams). A macro,
 * so that the logit's loop is inlined (a function pointer per feature cost ~4 ns of ~1 ns of work). */
#define EACH_GRAM(t, n, bits, VISIT)                                                                  \
    do {                                                                                             \
        for (int g_ = 3; g_ <= 5; g_++) {                                                            \
            const uint64_t mask_ = (1ULL << (8 * g_)) - 1;                                           \
            uint64_t x_ = 0;                                                                         \
            for (Py_ssize_t i_ = 0; i_ < (n); i_++) {                                                \
                x_ = (x_ >> 8) | ((uint64_t)(t)[i_] << (8 * (g_ - 1)));                              \
                if (i_ >= g_ - 1) VISIT(mix(((x_ & mask_) | ((uint64_t)g_ << 56)) ^ SEED_CHAR, bits)); \
            }                                                                                        \
        }                                                                                            \
        for (int pass_ = 0; pass_ < 2; pass_++) {                                                    \
            uint64_t prev_ = 0;                                                                      \
            int have_ = 0;                                                                           \
            Py_ssize_t i_ = 0;                                                                       \
            while (i_ < (n)) {                                                                       \
                while (i_ < (n) && (t)[i_] == ' ') i_++;                                             \
                if (i_ >= (n)) break;                                                                \
                uint64_t h_ = FNV_OFFSET;                                                            \
                while (i_ < (n) && (t)[i_] != ' ') h_ = (h_ ^ (t)[i_++]) * FNV_PRIME;                \
                if (pass_ == 0) VISIT(mix(h_ ^ SEED_WORD, bits));                                    \
                else if (have_) VISIT(mix((prev_ * FNV_PRIME) ^ h_ ^ SEED_BIGRAM, bits));            \
                prev_ = h_;                                                                          \
                have_ = 1;                                                                           \
            }                                                                                        \
        }                                                                                            \
    } while (0)

typedef struct {
    PyObject *list;
    int failed;
} list_ctx;

static void append_bucket(uint32_t bucket, void *ctx) {
    list_ctx *c = (list_ctx *)ctx;
    if (c->failed) return;
    PyObject *v = PyLong_FromUnsignedLong(bucket);
    if (v == NULL || PyList_Append(c->list, v) < 0) c->failed = 1; /* the error stays set for the caller */
    Py_XDECREF(v);
}

static int check_bits(int bits) {
    if (bits < 8 || bits > 24) {
        PyErr_SetString(PyExc_ValueError, "bits must be in 8..24");
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(grams_doc, "grams(text: bytes, bits: int) -> list[int]\n\nEvery feature's bucket, as grams_reference.");

static PyObject *grams(PyObject *self, PyObject *args) {
    Py_buffer text;
    int bits;
    if (!PyArg_ParseTuple(args, "y*i", &text, &bits)) return NULL;
    if (!check_bits(bits)) {
        PyBuffer_Release(&text);
        return NULL;
    }
    list_ctx c = {PyList_New(0), 0};
    const unsigned char *t = text.buf;
#define APPEND(b) append_bucket((b), &c)
    if (c.list != NULL) EACH_GRAM(t, text.len, bits, APPEND);
#undef APPEND
    PyBuffer_Release(&text);
    if (c.failed) Py_CLEAR(c.list);
    return c.list;
}

PyDoc_STRVAR(logit_doc,
"logit(text: bytes, weights: float32 buffer of 2**bits, bits: int, bias: float) -> float\n\n"
"bias + sum of the features' weights / sqrt(number of features).");

static PyObject *logit(PyObject *self, PyObject *args) {
    Py_buffer text, weights;
    int bits;
    double bias;
    if (!PyArg_ParseTuple(args, "y*y*id", &text, &weights, &bits, &bias)) return NULL;
    PyObject *result = NULL;
    if (!check_bits(bits)) goto done;
    if (weights.len != (Py_ssize_t)sizeof(float) << bits || weights.itemsize != (Py_ssize_t)sizeof(float)) {
        PyErr_SetString(PyExc_ValueError, "weights must be 2**bits float32 values");
        goto done;
    }
    const float *w = weights.buf;
    const unsigned char *t = text.buf;
    double sum = 0.0;
    Py_ssize_t count = 0;
#define ADD(b) (sum += w[(b)], count++)
    EACH_GRAM(t, text.len, bits, ADD);
#undef ADD
    result = PyFloat_FromDouble(bias + (count ? sum / sqrt((double)count) : 0.0));
done:
    PyBuffer_Release(&text);
    PyBuffer_Release(&weights);
    return result;
}

static PyMethodDef methods[] = {
    {"normalize", normalize, METH_O, normalize_doc},
    {"grams", grams, METH_VARARGS, grams_doc},
    {"logit", logit, METH_VARARGS, logit_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_intent", "The intent model's hot path.", -1, methods};

PyMODINIT_FUNC PyInit__intent(void) { return PyModule_Create(&module); }

/* The template fingerprint's inner loop in C: skeleton words → bottom-k shingle hashes.
 *
 * detectors/reference/skeleton.py defines what this computes (the template fingerprint of the skeleton
 * words of the lowercased head and tail that features.skeleton_bytes cuts);
 * tests/detectors/test_accelerators.py checks that both give the same values on the real corpora. Per prompt:
 * code and quoted input are removed (as re.sub of ```…```, "…" up to 400 and `…` up to 200 characters
 * would), one pass over the bytes finds the words (ASCII digits and punctuation are separators, as in
 * Python's bytes.translate + split), then MurmurHash3 (x86, 32-bit, seed 0: mmh3.hash) per word and
 * CPython 3.11's tuple hash per 3-shingle.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_murmur3.h"

/* Sixteen bytes as one value (GCC's and clang's vector extension: SSE2 on x86-64, NEON on ARM). */
typedef unsigned char bytes16 __attribute__((vector_size(16)));

#define HEAD_WORDS 24
#define TAIL_WORDS 8
#define MAX_K 64

static unsigned char is_separator[256];
static unsigned char lower[256]; /* ASCII lowercase */

static void init_separators(void) {
    for (int c = 0; c < 256; c++) lower[c] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    const char *punct = "0123456789.,;:!?()[]{}<>\"'`*#|/\\=+-_~^%$@&";
    for (const char *p = punct; *p; p++) is_separator[(unsigned char)*p] = 1;
    /* bytes.split() with no argument splits on ASCII whitespace */
    const char *space = " \t\n\r\x0b\x0c";
    for (const char *p = space; *p; p++) is_separator[(unsigned char)*p] = 1;
}

/* Characters (not bytes) of UTF-8 in [s, end) until ``stop`` or a newline; -1 when more than ``limit``
 * come first or the text ends. On success *close is the index of ``stop``. memchr finds both ends (a
 * failed quote is common: prompts quote whole paragraphs), and characters are counted only past
 * ``limit`` bytes, since a character has at least one. */
static Py_ssize_t quoted_length(const unsigned char *s, Py_ssize_t from, Py_ssize_t n, unsigned char stop, int limit,
                                Py_ssize_t *close) {
    Py_ssize_t window = n - from, most = 4 * (Py_ssize_t)limit + 4; /* no farther than limit characters */
    if (window > most) window = most;
    if (window <= 0) return -1;
    const unsigned char *at = memchr(s + from, stop, (size_t)window);
    const unsigned char *newline = memchr(s + from, '\n', at == NULL ? (size_t)window : (size_t)(at - (s + from)));
    if (at == NULL || newline != NULL) return -1;
    Py_ssize_t bytes = at - (s + from), chars = bytes;
    if (bytes > limit) { /* UTF-8 may still fit: count the characters (continuation bytes are not ones) */
        chars = 0;
        for (Py_ssize_t i = from; i < from + bytes; i++) chars += (s[i] & 0xC0) != 0x80;
        if (chars > limit) return -1;
    }
    *close = at - s;
    return chars;
}

/* The index of the first '"' or '`' in s[i:n], or n: sixteen bytes a step, then byte by byte. */
static Py_ssize_t next_quote(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) {
    for (; i + 16 <= n; i += 16) {
        bytes16 c;
        uint64_t hit[2];
        memcpy(&c, s + i, 16);
        bytes16 quote = (bytes16)(c == '"') | (bytes16)(c == '`');
        memcpy(hit, &quote, 16);
        if (hit[0] | hit[1]) break;
    }
    while (i < n && s[i] != '"' && s[i] != '`') i++;
    return i;
}

/* Copy UTF-8 ``s`` to ``out`` with every match of re.compile(r'```.*?```|"[^"\n]{1,400}"|`[^`\n]{1,200}`',
 * re.S) replaced by one space, leftmost first as re.sub finds them; returns the length written. Matches
 * start at an ASCII byte, which never occurs inside a multi-byte character, so a byte scan is exact. */
static Py_ssize_t strip_quoted(const unsigned char *s, Py_ssize_t n, unsigned char *out) {
    Py_ssize_t i = 0, o = 0, close;
    while (i < n) {
        Py_ssize_t run = next_quote(s, i, n); /* the plain text up to it, copied in one go */
        memcpy(out + o, s + i, (size_t)(run - i));
        o += run - i;
        i = run;
        if (i >= n) break;
        unsigned char c = s[i];
        if (c == '`' && i + 2 < n && s[i + 1] == '`' && s[i + 2] == '`') {
            const unsigned char *end = NULL;
            for (Py_ssize_t j = i + 3; j + 2 < n; j++)
                if (s[j] == '`' && s[j + 1] == '`' && s[j + 2] == '`') {
                    end = s + j;
                    break;
                }
            if (end != NULL) {
                out[o++] = ' ';
                i = end - s + 3;
                continue;
            }
        }
        Py_ssize_t chars = quoted_length(s, i + 1, n, c, c == '"' ? 400 : 200, &close);
        if (chars >= 1) {
            out[o++] = ' ';
            i = close + 1;
            continue;
        }
        out[o++] = c;
        i++;
    }
    return o;
}

/* The bytes of ``buf`` with code and quotes removed: ``buf`` itself when it has none, else a copy in
 * ``stack`` or on the heap (*heap then needs PyMem_Free). */
static const unsigned char *unquoted(Py_buffer *buf, unsigned char *stack, Py_ssize_t stack_size, unsigned char **heap,
                                     Py_ssize_t *len) {
    const unsigned char *s = buf->buf;
    *heap = NULL;
    *len = buf->len;
    if (memchr(s, '"', (size_t)buf->len) == NULL && memchr(s, '`', (size_t)buf->len) == NULL) return s;
    unsigned char *out = stack;
    if (buf->len > stack_size) {
        out = *heap = PyMem_Malloc((size_t)buf->len);
        if (out == NULL) return (const unsigned char *)PyErr_NoMemory();
    }
    *len = strip_quoted(s, buf->len, out);
    return out;
}

/* hash() of a Python int in int32 range: the value itself, except that -1 hashes to -2. */
static inline uint64_t int_hash(int32_t v) { return (uint64_t)(int64_t)(v == -1 ? -2 : v); }

/* CPython 3.11's tuple hash (Objects/tupleobject.c, xxHash-based) of three ints. */
static uint64_t tuple3_hash(int32_t a, int32_t b, int32_t c) {
    const uint64_t p1 = 11400714785074694791ULL, p2 = 14029467366897019727ULL, p5 = 2870177450012600261ULL;
    uint64_t acc = p5;
    int32_t items[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        acc += int_hash(items[i]) * p2;
        acc = (acc << 31) | (acc >> 33);
        acc *= p1;
    }
    acc += 3 ^ (p5 ^ 3527539UL);
    if (acc == (uint64_t)-1) acc = 1546275796;
    return acc;
}

/* The k smallest distinct values, ascending, moved to the front; returns how many there are: what
 * sorting, dropping duplicates and keeping the first k gives, in one pass of insertions (k is small, and
 * qsort's calls through a comparison pointer cost more than the rest of the fingerprint). */
static int bottom_k(uint32_t *values, int n, int k) {
    int kept = 0;
    for (int i = 0; i < n; i++) {
        uint32_t v = values[i];
        if (kept == k && (k == 0 || v >= values[kept - 1])) continue;
        int at = kept;
        while (at > 0 && values[at - 1] > v) at--;
        if (at > 0 && values[at - 1] == v) continue; /* a duplicate */
        if (kept < k) kept++;
        for (int j = kept - 1; j > at; j--) values[j] = values[j - 1];
        values[at] = v;
    }
    return kept;
}

/* Spans [start, end) of the words of s, as bytes.translate(separators to spaces).split() finds them;
 * calls visit(ctx, s, start, end, index) per word until it returns 1 (enough) or -1 (an error); returns
 * how many words it visited, or -1. */
typedef int (*visit_fn)(void *ctx, const unsigned char *s, Py_ssize_t start, Py_ssize_t end, Py_ssize_t index);

static Py_ssize_t scan_words(const unsigned char *s, Py_ssize_t n, visit_fn visit, void *ctx) {
    Py_ssize_t words = 0, i = 0;
    while (i < n) {
        while (i < n && is_separator[s[i]]) i++;
        if (i >= n) break;
        Py_ssize_t start = i;
        while (i < n && !is_separator[s[i]]) i++;
        int rc = visit(ctx, s, start, i, words);
        if (rc < 0) return -1;
        words++;
        if (rc > 0) break; /* the visitor has what it needs */
    }
    return words;
}

/* 0xff in each lane whose byte separates words: ASCII whitespace (\t to \r, space), digits and every
 * printable non-letter; init_separators' table, which the test of count_words pins this to. */
static inline bytes16 separators16(bytes16 c) {
    bytes16 space = (bytes16)((bytes16)(c - 9) < 5);
    bytes16 printable = (bytes16)((bytes16)(c - 0x20) < 0x5f);
    bytes16 letter = (bytes16)((bytes16)((c | 0x20) - 'a') < 26);
    return space | (printable & ~letter);
}

/* How many words s has: the separator-to-word transitions, sixteen bytes a step (every byte of the
 * skeleton is read for the count, and word boundaries are what a branch predictor cannot guess). */
static Py_ssize_t count_words(const unsigned char *s, Py_ssize_t n) {
    if (n == 0) return 0;
    Py_ssize_t words = !is_separator[s[0]], i = 1; /* the start of the text counts as a separator */
    for (; i + 16 <= n; i += 16) {
        bytes16 now, before;
        uint64_t starts[2];
        memcpy(&now, s + i, 16);
        memcpy(&before, s + i - 1, 16);
        bytes16 start = separators16(before) & ~separators16(now);
        memcpy(starts, &start, 16);
        /* one bit per lane holding a start, summed by a multiply (no popcount instruction by default) */
        const uint64_t ones = 0x0101010101010101ULL;
        words += (Py_ssize_t)(((starts[0] & ones) * ones) >> 56) + (Py_ssize_t)(((starts[1] & ones) * ones) >> 56);
    }
    for (; i < n; i++) words += is_separator[s[i - 1]] & (is_separator[s[i]] ^ 1);
    return words;
}

/* Spans of the last ``want`` words of s (fewer when it has fewer), in text order; returns how many. */
static int last_words(const unsigned char *s, Py_ssize_t n, Py_ssize_t spans[][2], int want) {
    int found = 0;
    Py_ssize_t i = n;
    while (found < want) {
        while (i > 0 && is_separator[s[i - 1]]) i--;
        if (i == 0) break;
        Py_ssize_t end = i;
        while (i > 0 && !is_separator[s[i - 1]]) i--;
        spans[found][0] = i;
        spans[found][1] = end;
        found++;
    }
    for (int a = 0, b = found - 1; a < b; a++, b--) { /* found back to front: reverse */
        Py_ssize_t s0 = spans[a][0], s1 = spans[a][1];
        spans[a][0] = spans[b][0], spans[a][1] = spans[b][1];
        spans[b][0] = s0, spans[b][1] = s1;
    }
    return found;
}

/* Whether word ``index`` of ``total`` is kept: the first HEAD_WORDS and the last TAIL_WORDS. */
static inline int kept_word(Py_ssize_t index, Py_ssize_t total) {
    return index < HEAD_WORDS || index >= total - TAIL_WORDS;
}

typedef struct {
    int32_t hashes[HEAD_WORDS];
    int n;
} head_hashes;

/* Hashes the first HEAD_WORDS words, then stops the scan. */
static int hash_head_word(void *ctx, const unsigned char *s, Py_ssize_t start, Py_ssize_t end, Py_ssize_t index) {
    head_hashes *h = ctx;
    h->hashes[h->n++] = murmur3_32(s + start, end - start);
    return h->n == HEAD_WORDS ? 1 : 0;
}

PyDoc_STRVAR(fingerprint_doc,
"fingerprint(skeleton: bytes, k: int) -> tuple[int, tuple[int, ...]]\n\n"
"Word count of a lowercased skeleton without code and quotes (before keeping the first and last words) and\n"
"the bottom-k 32-bit hashes of its word 3-shingles (features.template_fingerprint).");

static PyObject *fingerprint(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    /* Called once per event: arguments read directly (PyArg_ParseTuple's format parsing cost ~2,000
     * instructions a call, more than the lowering of the whole cut). */
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "fingerprint(skeleton, k) takes 2 arguments");
    long k = PyLong_AsLong(args[1]);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (k < 0 || k > MAX_K) return PyErr_Format(PyExc_ValueError, "k must be in 0..%d", MAX_K);
    Py_buffer buf;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0) return NULL;
    unsigned char stack[4096], *heap;
    Py_ssize_t len;
    const unsigned char *text = unquoted(&buf, stack, sizeof stack, &heap, &len);
    if (text == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    /* The kept words (see kept_word) without visiting every word: the first HEAD_WORDS from the front,
     * the last ones from the back, and the count in a branch-free pass. */
    Py_ssize_t words = count_words(text, len);
    int32_t kept[HEAD_WORDS + TAIL_WORDS];
    head_hashes head = {.n = 0};
    scan_words(text, len, hash_head_word, &head);
    int m = 0;
    for (int i = 0; i < head.n; i++) kept[m++] = head.hashes[i];
    if (words > HEAD_WORDS) {
        Py_ssize_t spans[TAIL_WORDS][2];
        int tail = words - HEAD_WORDS < TAIL_WORDS ? (int)(words - HEAD_WORDS) : TAIL_WORDS;
        tail = last_words(text, len, spans, tail);
        for (int i = 0; i < tail; i++) kept[m++] = murmur3_32(text + spans[i][0], spans[i][1] - spans[i][0]);
    }
    PyMem_Free(heap);
    PyBuffer_Release(&buf);
    uint32_t hashes[HEAD_WORDS + TAIL_WORDS];
    int nh = 0;
    if (m < 3) {
        for (int w = 0; w < m; w++) hashes[nh++] = (uint32_t)kept[w];
    } else {
        for (int w = 0; w + 2 < m; w++) hashes[nh++] = (uint32_t)tuple3_hash(kept[w], kept[w + 1], kept[w + 2]);
    }
    int nk = bottom_k(hashes, nh, (int)k);
    PyObject *fp = PyTuple_New(nk);
    if (fp == NULL) return NULL;
    for (int j = 0; j < nk; j++) {
        PyObject *v = PyLong_FromUnsignedLong(hashes[j]);
        if (v == NULL) {
            Py_DECREF(fp);
            return NULL;
        }
        PyTuple_SET_ITEM(fp, j, v);
    }
    return Py_BuildValue("nN", words, fp);
}

typedef struct {
    PyObject *list;
    Py_ssize_t total;
} word_list;

static int append_word(void *ctx, const unsigned char *s, Py_ssize_t start, Py_ssize_t end, Py_ssize_t index) {
    word_list *w = ctx;
    if (!kept_word(index, w->total)) return 0;
    PyObject *word = PyBytes_FromStringAndSize((const char *)s + start, end - start);
    if (word == NULL) return -1;
    int rc = PyList_Append(w->list, word);
    Py_DECREF(word);
    return rc;
}

PyDoc_STRVAR(words_doc,
"words(skeleton: bytes) -> list[bytes]\n\n"
"The first and last words of a lowercased skeleton without code and quotes (features.skeleton_words).");

static PyObject *words(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    word_list w = {PyList_New(0), 0};
    if (w.list == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    unsigned char stack[4096], *heap;
    Py_ssize_t len, rc = -1;
    const unsigned char *text = unquoted(&buf, stack, sizeof stack, &heap, &len);
    if (text != NULL) {
        w.total = count_words(text, len);
        rc = scan_words(text, len, append_word, &w);
    }
    PyMem_Free(heap);
    PyBuffer_Release(&buf);
    if (rc < 0) {
        Py_DECREF(w.list);
        return NULL;
    }
    return w.list;
}

/* ASCII A-Z to a-z over s[0:n] into o, sixteen bytes at a time (GCC's vector extension: SSE2 on x86-64,
 * NEON on ARM); a lookup table costs ~5 instructions a byte, and every event lowers ~1.6 KB. */
static unsigned char *lower_ascii(const unsigned char *s, Py_ssize_t n, unsigned char *o) {
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {
        bytes16 c;
        memcpy(&c, s + i, 16);
        bytes16 upper = (bytes16)((bytes16)(c - 'A') < 26); /* 0xff where A-Z */
        c |= upper & 0x20;
        memcpy(o + i, &c, 16);
    }
    for (; i < n; i++) o[i] = lower[s[i]];
    return o + n;
}

PyDoc_STRVAR(lowered_cut_doc,
"lowered_cut(text: str, head: int, tail: int) -> bytes | None\n\n"
"The first ``head`` and last ``tail`` characters of an ASCII ``text`` joined by a newline (all of it when\n"
"no longer than both), lowercased: what text[:head] + \"\\n\" + text[-tail:], .lower() and .encode() give,\n"
"in one copy. None for any other text (Unicode's lowercase is left to Python) or tail < 1.");


static PyObject *lowered_cut(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyUnicode_Check(args[0])) return PyErr_Format(PyExc_TypeError, "lowered_cut(str, int, int)");
    Py_ssize_t head = PyLong_AsSsize_t(args[1]), tail = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return NULL;
    PyObject *text = args[0];
    if (PyUnicode_READY(text) < 0) return NULL; /* a legacy string gets its PEP 393 form */
    if (head < 0 || tail < 1) Py_RETURN_NONE;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), cut = n > head + tail;
    if (PyUnicode_IS_ASCII(text)) { /* the common case: one byte per character, in and out */
        const unsigned char *s = PyUnicode_1BYTE_DATA(text);
        PyObject *out = PyBytes_FromStringAndSize(NULL, cut ? head + 1 + tail : n);
        if (out == NULL) return NULL;
        unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
        if (cut) {
            o = lower_ascii(s, head, o);
            *o++ = '\n';
            lower_ascii(s + n - tail, tail, o);
        } else {
            lower_ascii(s, n, o);
        }
        return out;
    }
    Py_RETURN_NONE; /* not ASCII: str.lower() in Python (reference/skeleton.py) */
}

static PyMethodDef methods[] = {
    {"fingerprint", (PyCFunction)(void (*)(void))fingerprint, METH_FASTCALL, fingerprint_doc},
    {"words", words, METH_VARARGS, words_doc},
    {"lowered_cut", (PyCFunction)(void (*)(void))lowered_cut, METH_FASTCALL, lowered_cut_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "detectors._skeleton",
    "Template fingerprints in C (see detectors/features.py for the definition).", -1, methods,
};

PyMODINIT_FUNC PyInit__skeleton(void) {
    init_separators();
    return PyModule_Create(&module);
}

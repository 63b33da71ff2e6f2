/*
 * Compiled fast path for the blocks of a CAR v1 file (atstack/core/car.py:read_car_raw), which the relay
 * runs on every #commit's CAR slice and repo verification on whole repos. Spec: atproto.com/specs/repository
 * ("CAR File Serialization"), ipld.io CARv1.
 *
 * read_blocks(data, pos, max_blocks, max_block_size, verify) splits the sections of the bytes object `data`
 * from offset `pos` (just past the header) and returns {binary CID: block} only when every section has the
 * common shape:
 *     a minimal varint length of at most 9 bytes, then a 36-byte CIDv1 whose prefix is dag-cbor or raw
 *     sha2-256 (01 71 12 20 / 01 55 12 20), then the block, of at most max_block_size bytes;
 * the sections end exactly at the end of `data`, there are at most max_blocks of them and, when verify,
 * every block's SHA-256 is its CID's digest. The first copy of a duplicate CID is kept (verified copies of
 * one CID are the same bytes), and the dict is in file order of first appearance, as car.py builds it.
 *
 * In every other case -- malformed, over a cap, a hash mismatch, or valid but unusual (other CIDs) -- it
 * returns None and car.py's Python code decides and words the error. So it must never accept what that code
 * rejects, never return different blocks, and never read outside the buffer whatever it is given.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "mst/_node_sha256.h"

#define CID_LEN 36
#define LOCAL_SECTIONS 64             /* a #commit slice (~10 blocks) needs no heap for its offsets */
#define NOGIL_BYTES ((size_t)1 << 16) /* hash larger inputs with the GIL released */

static const uint8_t DAG_PFX[4] = {0x01, 0x71, 0x12, 0x20};
static const uint8_t RAW_PFX[4] = {0x01, 0x55, 0x12, 0x20};

/* One section: its CID starts at `cid`, its block runs from cid + CID_LEN to `end`. */
typedef struct {
    Py_ssize_t cid;
    Py_ssize_t end;
} section;

/* A section length as car.py reads it: minimal, at most 9 bytes (63 bits), inside the buffer. 0 if not. */
static int read_varint(const uint8_t *p, Py_ssize_t end, Py_ssize_t *pos, uint64_t *out) {
    uint64_t v = 0;
    Py_ssize_t i = *pos;
    for (int shift = 0; shift < 63; shift += 7) {
        if (i >= end) return 0;
        uint8_t b = p[i++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (shift && !b) return 0;
            *pos = i;
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* An int argument clamped to the long long range (a cap beyond it is no cap); 0 if not an int. */
static int int_arg(PyObject *obj, long long *out) {
    if (!PyLong_Check(obj)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = overflow > 0 ? LLONG_MAX : overflow < 0 ? LLONG_MIN : v;
    return 1;
}

/* 1 if the block hashes to the 32-byte digest. */
static int digest_matches(const uint8_t *block, size_t len, const uint8_t *digest) {
    uint32_t h[8];
    sha256(block, len, h);
    for (int i = 0; i < 8; i++) {
        uint32_t want = (uint32_t)digest[4 * i] << 24 | (uint32_t)digest[4 * i + 1] << 16 |
                        (uint32_t)digest[4 * i + 2] << 8 | (uint32_t)digest[4 * i + 3];
        if (h[i] != want) return 0;
    }
    return 1;
}

typedef struct {
    section *at; /* `local` or a PyMem_Raw allocation */
    Py_ssize_t count, cap;
    section local[LOCAL_SECTIONS];
} section_list;

/* Splits the sections of p[pos:end] into `out` and, when verify, checks each block's hash as it goes (one
 * pass over memory: the hash reads the block the split has just reached). 1 if all are the fast shape,
 * 0 if not, -1 if out of memory. Touches no Python object, so it may run without the GIL. */
static int split(const uint8_t *p, Py_ssize_t pos, Py_ssize_t end, long long max_blocks,
                 long long max_block_size, int verify, section_list *out) {
    while (pos < end) {
        uint64_t n;
        if ((long long)out->count >= max_blocks || !read_varint(p, end, &pos, &n)) return 0;
        /* n >= CID_LEN first, so the subtraction cannot wrap; then the section must fit in what is left. */
        if (n < CID_LEN || n - CID_LEN > (uint64_t)max_block_size || n > (uint64_t)(end - pos)) return 0;
        const uint8_t *cid = p + pos;
        if (memcmp(cid, DAG_PFX, 4) != 0 && memcmp(cid, RAW_PFX, 4) != 0) return 0;
        if (verify && !digest_matches(cid + CID_LEN, (size_t)n - CID_LEN, cid + 4)) return 0;
        if (out->count == out->cap) {
            if (out->cap > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(section)) return -1;
            section *grown = PyMem_RawMalloc((size_t)out->cap * 2 * sizeof(section));
            if (!grown) return -1;
            memcpy(grown, out->at, (size_t)out->count * sizeof(section));
            if (out->at != out->local) PyMem_RawFree(out->at);
            out->at = grown;
            out->cap *= 2;
        }
        out->at[out->count].cid = pos;
        pos += (Py_ssize_t)n;
        out->at[out->count].end = pos;
        out->count++;
    }
    return 1;
}

static PyObject *py_read_blocks(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "read_blocks(data, pos, max_blocks, max_block_size, verify)");
        return NULL;
    }
    long long start, max_blocks, max_block_size;
    if (!PyBytes_CheckExact(args[0]) || !int_arg(args[1], &start) || !int_arg(args[2], &max_blocks) ||
        !int_arg(args[3], &max_block_size))
        Py_RETURN_NONE;
    int verify = PyObject_IsTrue(args[4]);
    if (verify < 0) return NULL;
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(args[0]);
    const Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    if (start < 0 || start > (long long)end || max_blocks < 0 || max_block_size < 0) Py_RETURN_NONE;

    section_list sections;
    sections.at = sections.local;
    sections.count = 0;
    sections.cap = LOCAL_SECTIONS;
    int ok;
    if (verify && (size_t)(end - start) >= NOGIL_BYTES) {
        /* `data` is an immutable bytes object the caller holds: safe to read without the GIL. */
        Py_BEGIN_ALLOW_THREADS;
        ok = split(p, (Py_ssize_t)start, end, max_blocks, max_block_size, verify, &sections);
        Py_END_ALLOW_THREADS;
    } else {
        ok = split(p, (Py_ssize_t)start, end, max_blocks, max_block_size, verify, &sections);
    }

    PyObject *result = NULL;
    if (ok < 0) {
        PyErr_NoMemory();
    } else if (ok == 0) {
        result = Py_NewRef(Py_None);
    } else if ((result = PyDict_New())) {
        for (Py_ssize_t k = 0; k < sections.count; k++) {
            const char *cid = (const char *)p + sections.at[k].cid;
            Py_ssize_t len = sections.at[k].end - sections.at[k].cid - CID_LEN;
            PyObject *key = PyBytes_FromStringAndSize(cid, CID_LEN);
            PyObject *block = key ? PyBytes_FromStringAndSize(cid + CID_LEN, len) : NULL;
            /* setdefault: the first copy of a duplicate CID stays */
            int failed = !block || !PyDict_SetDefault(result, key, block);
            Py_XDECREF(key);
            Py_XDECREF(block);
            if (failed) {
                Py_CLEAR(result);
                break;
            }
        }
    }
    if (sections.at != sections.local) PyMem_RawFree(sections.at);
    return result;
}

static PyMethodDef methods[] = {
    {"read_blocks", (PyCFunction)(void (*)(void))py_read_blocks, METH_FASTCALL,
     "read_blocks(data, pos, max_blocks, max_block_size, verify) -> dict[bytes, bytes] | None: the CAR "
     "sections of `data` from `pos` as {binary CID: block}, when all are the common blessed-CID shape (and "
     "hash to their CIDs, if verify); None where car.py's Python reader must decide."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_car_c",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__car_c(void) {
    int sha_x86 = 0;
#ifdef HAVE_SHA_X86
    if ((sha_x86 = cpu_has_sha_x86())) sha256_block = sha256_block_x86;
#endif
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "SHA_X86", sha_x86) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

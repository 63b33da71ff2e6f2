/*
 * One pass over DRISL bytes for the atproto data-model rules that cbrrr's decoder does not enforce:
 * no floats, integers within the signed 64-bit range, nesting depth <= 32, and tag-42 payloads that are a
 * 0x00 byte followed by a well-formed CIDv1 (<= 100 bytes).
 *
 * It runs after cbrrr has decoded (and so structurally validated) the same bytes, but still checks every
 * bound itself: it must never read outside the buffer, whatever it is given. Spec: atproto.com/specs/
 * data-model ("Data Types", "Link and CID Formats"). Python fallback: atstack/core/cbor.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define MAX_DEPTH 32
#define MAX_CID_BYTES 100

static int read_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 63; shift += 7) {
        if (*i >= n) return -1;
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (shift && !b) return -1; /* not minimal */
            *out = v;
            return 0;
        }
    }
    return -1;
}

static const char *check_cid(const uint8_t *p, size_t n) {
    /* p/n: the byte string under tag 42, i.e. 0x00 + binary CID */
    if (n < 1 || p[0] != 0x00) return "invalid CID in tag 42: missing 0x00 prefix";
    if (n - 1 > MAX_CID_BYTES) return "invalid CID in tag 42: CID longer than 100 bytes";
    size_t i = 1;
    uint64_t version, codec, hash, len;
    if (read_varint(p, n, &i, &version) || version != 1) return "invalid CID in tag 42: not a CIDv1";
    if (read_varint(p, n, &i, &codec) || read_varint(p, n, &i, &hash) || read_varint(p, n, &i, &len))
        return "invalid CID in tag 42: bad varint";
    if (len != n - i) return "invalid CID in tag 42: digest length does not match its multihash header";
    return NULL;
}

/* Returns NULL when the bytes obey the rules, else the reason. */
static const char *screen(const uint8_t *p, size_t n) {
    uint64_t remaining[MAX_DEPTH + 1];
    int depth = 0;
    size_t i = 0;
    for (;;) {
        if (i >= n) return "truncated CBOR";
        uint8_t ib = p[i++];
        unsigned major = ib >> 5, info = ib & 0x1f;
        uint64_t arg;
        if (major == 7) {
            if (info == 25 || info == 26 || info == 27) return "floats are not allowed in the atproto data model";
            if (info < 20 || info > 22) return "unsupported CBOR simple value";
            arg = 0;
        } else if (info < 24) {
            arg = info;
        } else if (info <= 27) {
            size_t w = (size_t)1 << (info - 24);
            if (n - i < w) return "truncated CBOR";
            arg = 0;
            for (size_t k = 0; k < w; k++) arg = (arg << 8) | p[i + k];
            i += w;
        } else {
            return "indefinite or reserved CBOR length";
        }
        switch (major) {
        case 0:
        case 1:
            if (arg > (uint64_t)INT64_MAX) return "integer outside the signed 64-bit range";
            break;
        case 2:
        case 3:
            if (arg > n - i) return "truncated CBOR";
            i += (size_t)arg;
            break;
        case 4:
        case 5: {
            if (depth >= MAX_DEPTH) return "nesting deeper than 32";
            if (arg > n) return "truncated CBOR"; /* every item takes at least one byte */
            uint64_t items = major == 4 ? arg : arg * 2;
            if (items) {
                remaining[depth++] = items;
                continue;
            }
            break;
        }
        case 6: {
            if (arg != 42) return "CBOR tag other than 42";
            if (i >= n) return "truncated CBOR";
            uint8_t hb = p[i++];
            if ((hb >> 5) != 2) return "tag 42 must wrap a byte string";
            unsigned hinfo = hb & 0x1f;
            uint64_t len;
            if (hinfo < 24) {
                len = hinfo;
            } else if (hinfo <= 27) {
                size_t w = (size_t)1 << (hinfo - 24);
                if (n - i < w) return "truncated CBOR";
                len = 0;
                for (size_t k = 0; k < w; k++) len = (len << 8) | p[i + k];
                i += w;
            } else {
                return "indefinite or reserved CBOR length";
            }
            if (len > n - i) return "truncated CBOR";
            const char *err = check_cid(p + i, (size_t)len);
            if (err) return err;
            i += (size_t)len;
            break;
        }
        default:
            break; /* major 7 handled above */
        }
        /* one item complete: close every container it completes */
        while (depth > 0 && --remaining[depth - 1] == 0) depth--;
        if (depth == 0) break;
    }
    if (i != n) return "trailing bytes after the CBOR item";
    return NULL;
}

static PyObject *py_screen(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const char *err = screen((const uint8_t *)view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (err) {
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"screen", py_screen, METH_O,
     "screen(data) -> None: raise ValueError if DRISL bytes hold a float, an integer outside int64, "
     "nesting deeper than 32 or a malformed tag-42 CID."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_drisl_screen", NULL, -1, methods};

PyMODINIT_FUNC PyInit__drisl_screen(void) { return PyModule_Create(&module); }

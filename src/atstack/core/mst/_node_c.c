/*
 * Compiled fast path for MST node blocks: strict decoding of the one canonical byte layout a valid node
 * can have, and encoding of a node to that layout. Spec: atproto.com/specs/repository ("MST Structure").
 *
 * parse_node(data, level, cid_type) (level None: the root, level from its keys) accepts only
 *     map(2) "e" array(n) of { map(4) "k" bytes, "p" uint, "t" null|link, "v" link }, then "l" null|link
 * with minimal-length heads and nothing after, node links (l, t) being 36-byte dag-cbor CIDs and record
 * links (v) 36-byte dag-cbor or raw CIDs, and runs every check of atstack/core/mst/node.py:parse_node
 * (prefix compression maximal, keys strictly ascending, key syntax and size, key depth = node level,
 * entry/level caps, empty-node and level-0 rules). It returns (level, keys, vals, subs) as tuples, or None
 * for anything else -- invalid input and valid-but-unusual input alike -- and the Python parser then
 * decides (and words the error). So it must never accept what the Python parser rejects, and it must never
 * read outside the buffer whatever it is given.
 *
 * encode_node(keys, vals, subs, cid_type) writes the bytes node.py's Python encoder writes, or returns None
 * where that encoder would do something unusual (raise, or accept odd types), so the caller falls back.
 *
 * Key depth needs SHA-256 of each key; it is computed here (FIPS 180-4) to avoid a Python call per key.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Must equal atstack.core.mst.keys / atstack.core.cbor (tests compare them). */
#define MAX_ENTRIES 512
#define MAX_KEY_BYTES 1024
#define MAX_KEY_DEPTH 32
#define MAX_BLOCK_SIZE (2 * 1024 * 1024)

#include "_node_sha256.h"

/* Leading zero bits of SHA-256(key), halved: the key's layer in the tree. */
static int key_depth(const uint8_t *key, size_t len) {
    uint32_t h[8];
    sha256(key, len, h);
    int zeros = 0;
    for (int i = 0; i < 8; i++) {
        if (h[i]) {
            zeros += __builtin_clz(h[i]);
            return zeros >> 1;
        }
        zeros += 32;
    }
    return zeros >> 1;
}

/* ---- key syntax: [A-Za-z0-9_~.:-]+/[A-Za-z0-9_~.:-]+, at most MAX_KEY_BYTES ---- */

static uint8_t KEY_CHAR[256]; /* 1: segment character, 2: the '/' separator, 0: invalid */

static void init_key_chars(void) {
    for (int c = 0; c < 256; c++) {
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                 c == '~' || c == '.' || c == ':' || c == '-';
        KEY_CHAR[c] = ok ? 1 : 0;
    }
    KEY_CHAR['/'] = 2;
}

static int key_syntax_ok(const uint8_t *key, size_t len) {
    if (len < 3 || len > MAX_KEY_BYTES) return 0;
    size_t slash = 0, slashes = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t cls = KEY_CHAR[key[i]];
        if (!cls) return 0;
        if (cls == 2) {
            slash = i;
            slashes++;
        }
    }
    return slashes == 1 && slash > 0 && slash < len - 1;
}

/* ---- the canonical layout ---- */

/* A head of major type `major` with a minimal argument below 65536; advances *i. 0 on mismatch. */
static int read_head(const uint8_t *p, size_t n, size_t *i, unsigned major, size_t *out) {
    if (*i >= n) return 0;
    uint8_t ib = p[(*i)++];
    if ((ib >> 5) != major) return 0;
    unsigned info = ib & 0x1f;
    if (info < 24) {
        *out = info;
    } else if (info == 24) {
        if (n - *i < 1) return 0;
        *out = p[*i];
        *i += 1;
        if (*out < 24) return 0;
    } else if (info == 25) {
        if (n - *i < 2) return 0;
        *out = (size_t)p[*i] << 8 | p[*i + 1];
        *i += 2;
        if (*out < 256) return 0;
    } else {
        return 0;
    }
    return 1;
}

static int expect(const uint8_t *p, size_t n, size_t *i, const char *lit, size_t len) {
    if (n - *i < len || memcmp(p + *i, lit, len) != 0) return 0;
    *i += len;
    return 1;
}

#define LINK_HEAD "\xd8\x2a\x58\x25\x00" /* tag 42, byte string of 37: 0x00 + 36-byte CID */
#define LINK_LEN 41
static const uint8_t DAG_PFX[4] = {0x01, 0x71, 0x12, 0x20};
static const uint8_t RAW_PFX[4] = {0x01, 0x55, 0x12, 0x20};

/* A link at *i: returns the offset of its 36 CID bytes, 0 for null (when allowed), -1 if not the fast
 * shape. Node links must be dag-cbor; record links (allow_raw) may be raw too. */
static Py_ssize_t read_link(const uint8_t *p, size_t n, size_t *i, int allow_null, int allow_raw) {
    if (*i >= n) return -1;
    if (p[*i] == 0xf6) {
        if (!allow_null) return -1;
        *i += 1;
        return 0;
    }
    if (n - *i < LINK_LEN || memcmp(p + *i, LINK_HEAD, 5) != 0) return -1;
    const uint8_t *cid = p + *i + 5;
    if (memcmp(cid, DAG_PFX, 4) != 0 && !(allow_raw && memcmp(cid, RAW_PFX, 4) == 0)) return -1;
    *i += LINK_LEN;
    return (Py_ssize_t)(cid - p);
}

static PyObject *make_cid(PyObject *cid_type, const uint8_t *raw) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)raw, 36);
    if (!b) return NULL;
    PyObject *cid = PyObject_CallOneArg(cid_type, b);
    Py_DECREF(b);
    return cid;
}

/* Returns a new reference to the result, Py_None (new reference) if not the fast shape, NULL on error. */
static PyObject *parse(const uint8_t *p, size_t n, long level, PyObject *cid_type) {
    size_t i = 0, count;
    if (n > MAX_BLOCK_SIZE || level < -1 || level > MAX_KEY_DEPTH) Py_RETURN_NONE;
    if (!expect(p, n, &i, "\xa2\x61" "e", 3) || !read_head(p, n, &i, 4, &count) || count > MAX_ENTRIES)
        Py_RETURN_NONE;
    /* every entry takes more than 50 bytes: a cheap bound before allocating */
    if (count > (n - i) / 50) Py_RETURN_NONE;

    PyObject *keys = PyTuple_New((Py_ssize_t)count);
    PyObject *vals = PyTuple_New((Py_ssize_t)count);
    PyObject *subs = PyTuple_New((Py_ssize_t)count + 1);
    PyObject *result = NULL;
    if (!keys || !vals || !subs) goto error;

    uint8_t key[MAX_KEY_BYTES];
    size_t lp = 0; /* length of the previous key, held in key[0:lp] */
    int any_sub = 0;
    for (size_t e = 0; e < count; e++) {
        size_t klen, pv;
        if (!expect(p, n, &i, "\xa4\x61" "k", 3) || !read_head(p, n, &i, 2, &klen) || klen > n - i)
            goto not_fast;
        const uint8_t *k = p + i;
        i += klen;
        if (!expect(p, n, &i, "\x61" "p", 2) || !read_head(p, n, &i, 0, &pv) || !expect(p, n, &i, "\x61" "t", 2))
            goto not_fast;
        Py_ssize_t t_off = read_link(p, n, &i, 1, 0);
        if (t_off < 0 || !expect(p, n, &i, "\x61" "v", 2)) goto not_fast;
        Py_ssize_t v_off = read_link(p, n, &i, 0, 1);
        if (v_off < 0) goto not_fast;

        /* ordering and maximal prefix compression, as in the Python parser */
        if (!klen) goto not_fast;
        if (pv < lp) {
            if (k[0] <= key[pv]) goto not_fast;
        } else if (pv != lp) {
            goto not_fast;
        }
        if (klen > MAX_KEY_BYTES - pv) goto not_fast;
        memcpy(key + pv, k, klen);
        lp = pv + klen;
        if (!key_syntax_ok(key, lp)) goto not_fast;
        int depth = key_depth(key, lp);
        if (level < 0) {
            if (depth > MAX_KEY_DEPTH) goto not_fast;
            level = depth;
        } else if (depth != level) {
            goto not_fast;
        }

        PyObject *kb = PyBytes_FromStringAndSize((const char *)key, (Py_ssize_t)lp);
        if (!kb) goto error;
        PyTuple_SET_ITEM(keys, (Py_ssize_t)e, kb);
        PyObject *v = make_cid(cid_type, p + v_off);
        if (!v) goto error;
        PyTuple_SET_ITEM(vals, (Py_ssize_t)e, v);
        PyObject *t;
        if (t_off) {
            any_sub = 1;
            t = make_cid(cid_type, p + t_off);
            if (!t) goto error;
        } else {
            t = Py_NewRef(Py_None);
        }
        PyTuple_SET_ITEM(subs, (Py_ssize_t)e + 1, t);
    }
    if (!expect(p, n, &i, "\x61" "l", 2)) goto not_fast;
    Py_ssize_t l_off = read_link(p, n, &i, 1, 0);
    if (l_off < 0 || i != n) goto not_fast;
    if (!count) {
        if (level < 0) {
            if (l_off) goto not_fast; /* an empty root pointing down */
            level = 0;
        } else if (!l_off) {
            goto not_fast; /* an empty node below the root */
        }
    }
    if (level == 0 && (any_sub || l_off)) goto not_fast;
    PyObject *left;
    if (l_off) {
        left = make_cid(cid_type, p + l_off);
        if (!left) goto error;
    } else {
        left = Py_NewRef(Py_None);
    }
    PyTuple_SET_ITEM(subs, 0, left);
    PyObject *lv = PyLong_FromLong(level);
    if (!lv) goto error;
    result = PyTuple_Pack(4, lv, keys, vals, subs);
    Py_DECREF(lv);
    goto error; /* release our references (result, if made, holds its own) */

not_fast:
    result = Py_NewRef(Py_None);
error:
    Py_XDECREF(keys);
    Py_XDECREF(vals);
    Py_XDECREF(subs);
    return result;
}

static PyObject *py_parse_node(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "parse_node(data, level, cid_type) takes 3 arguments");
        return NULL;
    }
    PyObject *data = args[0];
    long level = -1; /* the root: level from its keys */
    if (!PyBytes_CheckExact(data)) Py_RETURN_NONE;
    if (args[1] != Py_None) {
        if (!PyLong_CheckExact(args[1])) Py_RETURN_NONE;
        int overflow;
        level = PyLong_AsLongAndOverflow(args[1], &overflow);
        if (level == -1 && PyErr_Occurred()) return NULL;
        if (overflow || level < 0) Py_RETURN_NONE;
    }
    return parse((const uint8_t *)PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), level, args[2]);
}

/* ---- encoding ---- */

static PyObject *str_cid_bytes, *str_cid;

static size_t head_size(size_t n) { return n < 24 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5; }

static uint8_t *write_head(uint8_t *o, unsigned major, size_t n) {
    uint8_t m = (uint8_t)(major << 5);
    if (n < 24) {
        *o++ = m | (uint8_t)n;
    } else if (n < 256) {
        *o++ = m | 24;
        *o++ = (uint8_t)n;
    } else if (n < 65536) {
        *o++ = m | 25;
        *o++ = (uint8_t)(n >> 8);
        *o++ = (uint8_t)n;
    } else {
        *o++ = m | 26;
        for (int s = 24; s >= 0; s -= 8) *o++ = (uint8_t)(n >> s);
    }
    return o;
}

/* The cid_bytes (new reference) of a CID, or of a node's .cid for subtree slots (node_ok); NULL with no
 * exception set where the Python encoder would do anything but write a link. */
static PyObject *link_bytes(PyObject *obj, PyObject *cid_type, int node_ok) {
    PyObject *cid;
    if (Py_TYPE(obj) == (PyTypeObject *)cid_type) {
        cid = Py_NewRef(obj);
    } else {
        if (!node_ok) return NULL;
        cid = PyObject_GetAttr(obj, str_cid);
        if (!cid) {
            PyErr_Clear();
            return NULL;
        }
        if (Py_TYPE(cid) != (PyTypeObject *)cid_type) {
            Py_DECREF(cid);
            return NULL;
        }
    }
    PyObject *raw = PyObject_GetAttr(cid, str_cid_bytes);
    Py_DECREF(cid);
    if (!raw) {
        PyErr_Clear();
        return NULL;
    }
    /* the Python encoder's header for the 0x00-prefixed CID covers lengths below 65536 */
    if (!PyBytes_CheckExact(raw) || PyBytes_GET_SIZE(raw) + 1 >= 65536) {
        Py_DECREF(raw);
        return NULL;
    }
    return raw;
}

static size_t link_size(PyObject *raw) {
    size_t len = (size_t)PyBytes_GET_SIZE(raw) + 1;
    return 1 + 1 + head_size(len) + len; /* tag 42 (two bytes: 0xd8 0x2a) */
}

static uint8_t *write_link(uint8_t *o, PyObject *raw) {
    size_t len = (size_t)PyBytes_GET_SIZE(raw);
    *o++ = 0xd8;
    *o++ = 0x2a;
    o = write_head(o, 2, len + 1);
    *o++ = 0x00;
    memcpy(o, PyBytes_AS_STRING(raw), len);
    return o + len;
}

static PyObject *py_encode_node(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "encode_node(keys, vals, subs, cid_type) takes 4 arguments");
        return NULL;
    }
    PyObject *keys = args[0], *vals = args[1], *subs = args[2], *cid_type = args[3];
    if (!PyTuple_CheckExact(keys) || !PyTuple_CheckExact(vals) || !PyTuple_CheckExact(subs) ||
        !PyType_Check(cid_type))
        Py_RETURN_NONE;
    Py_ssize_t count = PyTuple_GET_SIZE(keys);
    if (PyTuple_GET_SIZE(vals) != count || PyTuple_GET_SIZE(subs) != count + 1 || count > 0xffffffffL)
        Py_RETURN_NONE;

    /* links[0] = l, links[2e + 1] = t of entry e (NULL: null), links[2e + 2] = v of entry e */
    PyObject **links = PyMem_Calloc((size_t)(2 * count + 1), sizeof(PyObject *));
    if (!links) return PyErr_NoMemory();
    PyObject *result = NULL;
    size_t size = 3 + head_size((size_t)count) + 2;
    const uint8_t *prev = (const uint8_t *)"";
    size_t prev_len = 0;
    for (Py_ssize_t e = 0; e < count; e++) {
        PyObject *k = PyTuple_GET_ITEM(keys, e);
        if (!PyBytes_CheckExact(k)) goto not_fast;
        const uint8_t *kp = (const uint8_t *)PyBytes_AS_STRING(k);
        size_t klen = (size_t)PyBytes_GET_SIZE(k), shared = 0, lim = klen < prev_len ? klen : prev_len;
        while (shared < lim && kp[shared] == prev[shared]) shared++;
        /* the Python encoder's tables stop at MAX_KEY_BYTES */
        if (klen - shared > MAX_KEY_BYTES || shared > MAX_KEY_BYTES) goto not_fast;
        size += 1 + 2 + head_size(klen - shared) + (klen - shared) + 2 + head_size(shared) + 2 + 2;
        PyObject *t = PyTuple_GET_ITEM(subs, e + 1);
        if (t != Py_None) {
            if (!(links[2 * e + 1] = link_bytes(t, cid_type, 1))) goto not_fast;
            size += link_size(links[2 * e + 1]);
        } else {
            size += 1;
        }
        if (!(links[2 * e + 2] = link_bytes(PyTuple_GET_ITEM(vals, e), cid_type, 0))) goto not_fast;
        size += link_size(links[2 * e + 2]);
        prev = kp;
        prev_len = klen;
    }
    PyObject *left = PyTuple_GET_ITEM(subs, 0);
    if (left != Py_None) {
        if (!(links[0] = link_bytes(left, cid_type, 1))) goto not_fast;
        size += link_size(links[0]);
    } else {
        size += 1;
    }

    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!result) goto done;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(result);
    *o++ = 0xa2;
    *o++ = 0x61;
    *o++ = 'e';
    o = write_head(o, 4, (size_t)count);
    prev = (const uint8_t *)"";
    prev_len = 0;
    for (Py_ssize_t e = 0; e < count; e++) {
        PyObject *k = PyTuple_GET_ITEM(keys, e);
        const uint8_t *kp = (const uint8_t *)PyBytes_AS_STRING(k);
        size_t klen = (size_t)PyBytes_GET_SIZE(k), shared = 0, lim = klen < prev_len ? klen : prev_len;
        while (shared < lim && kp[shared] == prev[shared]) shared++;
        *o++ = 0xa4;
        *o++ = 0x61;
        *o++ = 'k';
        o = write_head(o, 2, klen - shared);
        memcpy(o, kp + shared, klen - shared);
        o += klen - shared;
        *o++ = 0x61;
        *o++ = 'p';
        o = write_head(o, 0, shared);
        *o++ = 0x61;
        *o++ = 't';
        if (links[2 * e + 1])
            o = write_link(o, links[2 * e + 1]);
        else
            *o++ = 0xf6;
        *o++ = 0x61;
        *o++ = 'v';
        o = write_link(o, links[2 * e + 2]);
        prev = kp;
        prev_len = klen;
    }
    *o++ = 0x61;
    *o++ = 'l';
    if (links[0])
        o = write_link(o, links[0]);
    else
        *o++ = 0xf6;
    if ((size_t)(o - (uint8_t *)PyBytes_AS_STRING(result)) != size) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_SystemError, "encode_node: size mismatch");
        result = NULL;
    }
    goto done;

not_fast:
    result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t j = 0; j < 2 * count + 1; j++) Py_XDECREF(links[j]);
    PyMem_Free(links);
    return result;
}

static PyObject *py_sha256(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    int portable = 0;
    if (!PyArg_ParseTuple(args, "y*|p", &view, &portable)) return NULL;
    uint32_t h[8];
    sha256_with(portable ? sha256_block_portable : sha256_block, (const uint8_t *)view.buf, (size_t)view.len, h);
    PyBuffer_Release(&view);
    uint8_t out[32];
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyMethodDef methods[] = {
    {"parse_node", (PyCFunction)(void (*)(void))py_parse_node, METH_FASTCALL,
     "parse_node(data, level, cid_type) -> (level, keys, vals, subs) | None: strict decode of a canonical "
     "MST node block (level None: the root); None where the Python parser must decide."},
    {"encode_node", (PyCFunction)(void (*)(void))py_encode_node, METH_FASTCALL,
     "encode_node(keys, vals, subs, cid_type) -> bytes | None: the canonical node block; None where the "
     "Python encoder must run."},
    {"sha256", py_sha256, METH_VARARGS,
     "sha256(data, portable=False) -> bytes: the SHA-256 digest, with the CPU's SHA instructions when it has "
     "them unless portable (for tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_node_c",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__node_c(void) {
    init_key_chars();
    int sha_x86 = 0;
#ifdef HAVE_SHA_X86
    if ((sha_x86 = cpu_has_sha_x86())) sha256_block = sha256_block_x86;
#endif
    str_cid_bytes = PyUnicode_InternFromString("cid_bytes");
    str_cid = PyUnicode_InternFromString("cid");
    if (!str_cid_bytes || !str_cid) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "MAX_ENTRIES", MAX_ENTRIES) < 0 ||
        PyModule_AddIntConstant(m, "MAX_KEY_BYTES", MAX_KEY_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "MAX_KEY_DEPTH", MAX_KEY_DEPTH) < 0 ||
        PyModule_AddIntConstant(m, "MAX_BLOCK_SIZE", MAX_BLOCK_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "SHA_X86", sha_x86) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

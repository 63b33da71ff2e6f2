/*
 * SHA-256 (FIPS 180-4) for the compiled fast paths (mst/_node_c.c and core/_car_c.c include it): a portable
 * compression function and, on x86-64 with GCC/Clang, one using the SHA extensions when the CPU has them.
 * Static functions only, so each extension gets its own copy; each picks the block function once when it
 * loads.
 */
#ifndef ATSTACK_NODE_SHA256_H
#define ATSTACK_NODE_SHA256_H

#include <stdint.h>
#include <string.h>

/* ---- SHA-256 (FIPS 180-4); constants generated from the primes, see the module's tests ---- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H256[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block_portable(uint32_t h[8], const uint8_t *blk) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)blk[4 * t] << 24 | (uint32_t)blk[4 * t + 1] << 16 | (uint32_t)blk[4 * t + 2] << 8 |
               (uint32_t)blk[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = hh + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K256[t] + w[t];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The same compression with the x86 SHA extensions (four rounds per sha256rnds2 pair), used when the CPU
 * has them. The state is kept as the two lanes the instructions use: (a, b, e, f) and (c, d, g, h). */
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_X86 1

__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_block_x86(uint32_t h[8], const uint8_t *blk) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&h[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&h[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1b);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);
    const __m128i abef0 = abef, cdgh0 = cdgh;
    __m128i w[4]; /* the last sixteen schedule words, four per lane set, as a ring */
    for (int r = 0; r < 16; r++) {
        __m128i m;
        if (r < 4) {
            m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blk + 16 * r)), bswap);
        } else {
            /* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time */
            m = _mm_sha256msg1_epu32(w[r & 3], w[(r + 1) & 3]);
            m = _mm_add_epi32(m, _mm_alignr_epi8(w[(r + 3) & 3], w[(r + 2) & 3], 4));
            m = _mm_sha256msg2_epu32(m, w[(r + 3) & 3]);
        }
        w[r & 3] = m;
        __m128i wk = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&K256[4 * r]));
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0e));
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
    __m128i feba = _mm_shuffle_epi32(abef, 0x1b);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xb1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xf0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}

static int cpu_has_sha_x86(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1)) return 0;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29] */
}
#endif

typedef void (*block_fn)(uint32_t h[8], const uint8_t *blk);
static block_fn sha256_block = sha256_block_portable; /* set once, when the module loads */

/* The digest as eight big-endian words. */
static void sha256_with(block_fn block, const uint8_t *msg, size_t len, uint32_t h[8]) {
    memcpy(h, H256, sizeof(H256));
    size_t full = len & ~(size_t)63;
    for (size_t i = 0; i < full; i += 64) block(h, msg + i);
    /* Padding: 0x80, zeros, then the bit length as a 64-bit big-endian number; one or two blocks. */
    uint8_t tail[128];
    size_t rest = len - full;
    memset(tail, 0, sizeof(tail));
    if (rest) memcpy(tail, msg + full, rest);
    tail[rest] = 0x80;
    size_t tail_len = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
    block(h, tail);
    if (tail_len == 128) block(h, tail + 64);
}

static void sha256(const uint8_t *msg, size_t len, uint32_t h[8]) { sha256_with(sha256_block, msg, len, h); }

#endif

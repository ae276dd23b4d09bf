# cython: language_level=3
"""Keyed BLAKE2s (RFC 7693) for short messages, in C: the hash the SYN
cookies and the timestamp offset use (core.tcp.secure_seq: ``hashlib.blake2s``
keyed by the host's secret, personalised per use), so the compiled SYN path
(syn_fast) computes them without a Python object.  The interpreted build
calls hashlib; tests/tcp/test_syn_fast_rules.py checks both against hashlib
on random inputs.

``b2s_key_state(h, key, keylen, person, outlen)``: the chaining state after
the parameter block and the key block (keylen 0..32, person 8 bytes, zero
padded), computed once per secret, in h[0..7], and the bytes hashed so far
in h[8].  ``b2s_short(h, msg, n, out, outlen)``:
the digest of one message of 1..64 bytes from that state; ``b2s_cookie`` and
``b2s_tsoff`` and ``b2s_isn`` pack syncookies', secure_tcp_ts_off's and
secure_tcp_seq's messages and read
their digests as those do.
"""

from libc.stdint cimport uint8_t, uint32_t

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static const uint32_t tcpio_b2s_iv[8] = {
        0x6A09E667UL, 0xBB67AE85UL, 0x3C6EF372UL, 0xA54FF53AUL,
        0x510E527FUL, 0x9B05688CUL, 0x1F83D9ABUL, 0x5BE0CD19UL};
    static const uint8_t tcpio_b2s_sigma[10][16] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
        {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
        {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
        {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
        {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
        {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
        {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
        {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
        {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0}};
    static inline uint32_t tcpio_b2s_ld32(const uint8_t* p) {
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
            | ((uint32_t)p[3] << 24);
    }
    #define TCPIO_ROTR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
    #define TCPIO_B2S_G(a, b, c, d, x, y) do { \
        v[a] = v[a] + v[b] + (x); v[d] = TCPIO_ROTR32(v[d] ^ v[a], 16); \
        v[c] = v[c] + v[d];       v[b] = TCPIO_ROTR32(v[b] ^ v[c], 12); \
        v[a] = v[a] + v[b] + (y); v[d] = TCPIO_ROTR32(v[d] ^ v[a], 8);  \
        v[c] = v[c] + v[d];       v[b] = TCPIO_ROTR32(v[b] ^ v[c], 7);  \
    } while (0)
    static inline void tcpio_b2s_compress(uint32_t* h, const uint8_t* block, uint32_t t, int last) {
        uint32_t m[16], v[16];
        int i, r;
        for (i = 0; i < 16; i++) m[i] = tcpio_b2s_ld32(block + 4 * i);
        for (i = 0; i < 8; i++) { v[i] = h[i]; v[i + 8] = tcpio_b2s_iv[i]; }
        v[12] ^= t;                 /* the counter's high word stays 0: t < 2**32 */
        if (last) v[14] = ~v[14];
        for (r = 0; r < 10; r++) {
            const uint8_t* s = tcpio_b2s_sigma[r];
            TCPIO_B2S_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
            TCPIO_B2S_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
            TCPIO_B2S_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
            TCPIO_B2S_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
            TCPIO_B2S_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
            TCPIO_B2S_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
            TCPIO_B2S_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
            TCPIO_B2S_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        for (i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
    }
    static inline void tcpio_b2s_key_state(uint32_t* h, const uint8_t* key, size_t keylen,
                                    const uint8_t* person, size_t outlen) {
        uint8_t block[64];
        int i;
        h[8] = keylen ? 64 : 0;
        for (i = 0; i < 8; i++) h[i] = tcpio_b2s_iv[i];
        /* parameter block: digest length, key length, fanout 1, depth 1; personal */
        h[0] ^= 0x01010000UL ^ ((uint32_t)keylen << 8) ^ (uint32_t)outlen;
        h[6] ^= tcpio_b2s_ld32(person);
        h[7] ^= tcpio_b2s_ld32(person + 4);
        if (keylen) {           /* an empty key is no key block (plain BLAKE2s) */
            memset(block, 0, 64);
            memcpy(block, key, keylen);
            tcpio_b2s_compress(h, block, 64, 0);
        }
    }
    static inline void tcpio_b2s_short(const uint32_t* hk, const uint8_t* msg, size_t n,
                                uint8_t* out, size_t outlen) {
        /* hk[8]: the byte count before the message (64 after a key block, else 0) */
        uint32_t h[8];
        uint8_t block[64];
        size_t i;
        memcpy(h, hk, 32);
        memset(block, 0, 64);
        memcpy(block, msg, n);
        tcpio_b2s_compress(h, block, hk[8] + (uint32_t)n, 1);
        for (i = 0; i < outlen; i++) out[i] = (uint8_t)(h[i >> 2] >> (8 * (i & 3)));
    }
    static inline void tcpio_b2s_st32(uint8_t* p, uint32_t v) {   /* big-endian */
        p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
    }
    /* struct.pack("!IIHHI", raddr, laddr, rport, lport, count): the digest, big-endian */
    static inline uint32_t tcpio_b2s_cookie(const uint32_t* hk, uint32_t laddr, uint32_t lport,
                                     uint32_t raddr, uint32_t rport, uint32_t count) {
        uint8_t msg[16], out[4];
        tcpio_b2s_st32(msg, raddr);
        tcpio_b2s_st32(msg + 4, laddr);
        tcpio_b2s_st32(msg + 8, (rport << 16) | (lport & 0xFFFF));
        tcpio_b2s_st32(msg + 12, count);
        tcpio_b2s_short(hk, msg, 16, out, 4);
        return ((uint32_t)out[0] << 24) | ((uint32_t)out[1] << 16) | ((uint32_t)out[2] << 8)
            | out[3];
    }
    /* struct.pack("!II", laddr, raddr): the digest's first 4 bytes, little-endian */
    static inline uint32_t tcpio_b2s_tsoff(const uint32_t* hk, uint32_t laddr, uint32_t raddr) {
        uint8_t msg[8], out[8];
        tcpio_b2s_st32(msg, laddr);
        tcpio_b2s_st32(msg + 4, raddr);
        tcpio_b2s_short(hk, msg, 8, out, 8);
        return tcpio_b2s_ld32(out);
    }
    /* struct.pack("!IIHH", laddr, raddr, lport, rport): the digest's first 4 bytes,
       little-endian (secure_tcp_seq's F) */
    static inline uint32_t tcpio_b2s_isn(const uint32_t* hk, uint32_t laddr, uint32_t lport,
                                  uint32_t raddr, uint32_t rport) {
        uint8_t msg[12], out[8];
        tcpio_b2s_st32(msg, laddr);
        tcpio_b2s_st32(msg + 4, raddr);
        tcpio_b2s_st32(msg + 8, ((lport & 0xFFFF) << 16) | (rport & 0xFFFF));
        tcpio_b2s_short(hk, msg, 12, out, 8);
        return tcpio_b2s_ld32(out);
    }
    """
    void b2s_key_state "tcpio_b2s_key_state" (uint32_t* h, const uint8_t* key, size_t keylen,
                                              const uint8_t* person, size_t outlen) nogil
    void b2s_short "tcpio_b2s_short" (const uint32_t* hk, const uint8_t* msg, size_t n,
                                      uint8_t* out, size_t outlen) nogil
    uint32_t b2s_cookie "tcpio_b2s_cookie" (const uint32_t* hk, uint32_t laddr, uint32_t lport,
                                            uint32_t raddr, uint32_t rport, uint32_t count) nogil
    uint32_t b2s_tsoff "tcpio_b2s_tsoff" (const uint32_t* hk, uint32_t laddr,
                                          uint32_t raddr) nogil
    uint32_t b2s_isn "tcpio_b2s_isn" (const uint32_t* hk, uint32_t laddr, uint32_t lport,
                                      uint32_t raddr, uint32_t rport) nogil

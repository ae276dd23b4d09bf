/* Plain C RFC 1071 checksum: the yardstick for tcpio._fast.checksum.
 *
 * Compiled at benchmark time with `cc -O2 -shared -fPIC` and called through
 * ctypes.  The algorithm is the textbook scalar one: 32-bit loads into a
 * 64-bit accumulator (no carry handling needed in the loop), one fold at the
 * end, a byte swap on little-endian hosts.  csum_partial_wide() is the
 * faster kernel tcpio's Cython module uses.  csum_repeat() runs a sum `iters`
 * times inside C, so its throughput has no Python/ctypes call cost.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t fold64(uint64_t acc)
{
    acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
    acc = (acc & 0xFFFFu) + (acc >> 16);
    acc = (acc & 0xFFFFu) + (acc >> 16);
    acc = (acc & 0xFFFFu) + (acc >> 16);
    return (uint32_t)acc;
}

/* Folded ones'-complement sum in network byte order (not inverted). */
uint32_t csum_partial(const unsigned char *p, size_t n)
{
    uint64_t acc = 0;
    uint32_t w;
    uint16_t h;
    uint32_t s;
    const uint16_t probe = 1;

    while (n >= 4) {
        memcpy(&w, p, 4);
        acc += w;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        memcpy(&h, p, 2);
        acc += h;
        p += 2;
        n -= 2;
    }
    if (*(const unsigned char *)&probe == 1) {          /* little-endian */
        if (n)
            acc += p[0];
        s = fold64(acc);
        return ((s & 0xFF) << 8) | (s >> 8);
    }
    if (n)
        acc += (uint64_t)p[0] << 8;
    return fold64(acc);
}

/* The kernel tcpio/_fast/_csum.pxd uses, written in C: 64-bit loads, two
 * accumulators, carries out of bit 63 counted (2**64 == 1 mod 0xFFFF).  Shows
 * what the Cython module costs over the same algorithm in C. */
uint32_t csum_partial_wide(const unsigned char *p, size_t n)
{
    uint64_t a0 = 0, a1 = 0, c0 = 0, c1 = 0, w0, w1, w2, w3, s;
    uint32_t w;
    uint16_t h;
    const uint16_t probe = 1;

    while (n >= 32) {
        memcpy(&w0, p, 8);
        memcpy(&w1, p + 8, 8);
        memcpy(&w2, p + 16, 8);
        memcpy(&w3, p + 24, 8);
        a0 += w0; c0 += a0 < w0;
        a1 += w1; c1 += a1 < w1;
        a0 += w2; c0 += a0 < w2;
        a1 += w3; c1 += a1 < w3;
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        memcpy(&w0, p, 8);
        a0 += w0; c0 += a0 < w0;
        p += 8;
        n -= 8;
    }
    s = a0 + a1;
    c0 += c1 + (s < a0);
    if (n >= 4) { memcpy(&w, p, 4); c0 += w; p += 4; n -= 4; }
    if (n >= 2) { memcpy(&h, p, 2); c0 += h; p += 2; n -= 2; }
    if (*(const unsigned char *)&probe == 1) {
        if (n)
            c0 += p[0];
        w = fold64((uint64_t)fold64(s) + c0);
        return ((w & 0xFF) << 8) | (w >> 8);
    }
    if (n)
        c0 += (uint64_t)p[0] << 8;
    return fold64((uint64_t)fold64(s) + c0);
}

/* Sum the same buffer `iters` times; returns a value so nothing is optimised away. */
uint32_t csum_repeat(int wide, const unsigned char *p, size_t n, size_t iters)
{
    uint32_t x = 0;
    for (size_t i = 0; i < iters; i++) {
        __asm__ volatile("" : : "r"(p) : "memory");   /* keep every iteration */
        x ^= wide ? csum_partial_wide(p, n) : csum_partial(p, n);
    }
    return x;
}

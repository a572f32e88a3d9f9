/* The reference G.722 (64 kbit/s) of libspandsp for tests/interop/g722.rs: `enc` reads
 * 16 kHz 16-bit little-endian PCM on stdin and writes G.722 bytes, `dec` the reverse.
 * Compiled by the test at run time (Debian: libspandsp-dev); never shipped. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <spandsp.h>
int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: g722ref enc|dec <in >out\n"); return 2; }
    if (strcmp(argv[1], "enc") == 0) {
        g722_encode_state_t *s = g722_encode_init(NULL, 64000, 0);
        int16_t pcm[320]; uint8_t code[160]; size_t n;
        while ((n = fread(pcm, 2, 320, stdin)) > 0) {
            int len = g722_encode(s, code, pcm, (int) n);
            fwrite(code, 1, (size_t) len, stdout);
        }
    } else {
        g722_decode_state_t *s = g722_decode_init(NULL, 64000, 0);
        int16_t pcm[320]; uint8_t code[160]; size_t n;
        while ((n = fread(code, 1, 160, stdin)) > 0) {
            int len = g722_decode(s, pcm, code, (int) n);
            fwrite(pcm, 2, (size_t) len, stdout);
        }
    }
    return 0;
}

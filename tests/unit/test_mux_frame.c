/* wsmux frame codec: literal byte vectors from docs/protocol.md ("The contract") and the captured Go sessions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mux/mux.h"

static void test_encode_vectors(void **state)
{
    uint8_t out[MUX_MAX_CONTROL_LEN];
    /* "wsmux SYN stream=0" from the 2019 capture */
    assert_int_equal(mux_frame_encode(out, MUX_SYN, 0, 0), 5);
    assert_memory_equal(out, "\x01\x00\x00\x00\x00", 5);
    /* "wsmux ACK stream=0 n=1024" */
    assert_int_equal(mux_frame_encode(out, MUX_ACK, 0, 1024), 9);
    assert_memory_equal(out, "\x02\x00\x00\x00\x00\x00\x04\x00\x00", 9);
    /* newest client: ACK n=4194304 on stream 2 */
    assert_int_equal(mux_frame_encode(out, MUX_ACK, 2, 4194304), 9);
    assert_memory_equal(out, "\x02\x02\x00\x00\x00\x00\x00\x40\x00", 9);
    assert_int_equal(mux_frame_encode(out, MUX_FIN, 0x01020304, 0), 5);
    assert_memory_equal(out, "\x03\x04\x03\x02\x01", 5);
    assert_int_equal(mux_frame_encode(out, MUX_DAT, 7, 0), 5);
    assert_memory_equal(out, "\x00\x07\x00\x00\x00", 5);
    assert_int_equal(mux_frame_encode(out, MUX_RST, 9, MUX_REASON_CANCEL), 9);
    assert_memory_equal(out, "\x05\x09\x00\x00\x00\x02\x00\x00\x00", 9);
    assert_int_equal(mux_frame_encode(out, MUX_GOAWAY, 0, MUX_REASON_DRAIN), 9);
    assert_memory_equal(out, "\x06\x00\x00\x00\x00\x06\x00\x00\x00", 9);
}

static void test_decode_vectors(void **state)
{
    struct mux_frame f;
    assert_int_equal(mux_frame_decode((const uint8_t *)"\x02\x00\x00\x00\x00\xe5\x00\x00\x00", 9, 0, &f), 0);
    assert_int_equal(f.type, MUX_ACK);
    assert_int_equal(f.id, 0);
    assert_int_equal(f.value, 229);
    assert_int_equal(mux_frame_decode((const uint8_t *)"\x00\xff\xff\xff\xffhello", 10, 0, &f), 0);
    assert_int_equal(f.type, MUX_DAT);
    assert_int_equal(f.id, 0xffffffffu);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "hello", 5);
    /* empty DAT is legal */
    assert_int_equal(mux_frame_decode((const uint8_t *)"\x00\x01\x00\x00\x00", 5, 0, &f), 0);
    assert_int_equal(f.len, 0);
    assert_int_equal(mux_frame_decode((const uint8_t *)"\x01\x03\x00\x00\x00", 5, 0, &f), 0);
    assert_int_equal(f.type, MUX_SYN);
    assert_int_equal(f.id, 3);
    assert_int_equal(mux_frame_decode((const uint8_t *)"\x03\x03\x00\x00\x00", 5, 0, &f), 0);
    assert_int_equal(f.type, MUX_FIN);
}

static void test_decode_malformed(void **state)
{
    struct mux_frame f;
    const uint8_t *ack = (const uint8_t *)"\x02\x00\x00\x00\x00\x01\x02\x03\x04\x05";
    /* shorter than the header: the 2017 Go peer panics on these */
    for (size_t n = 0; n < 5; n++)
        assert_int_equal(mux_frame_decode(ack, n, 0, &f), MUX_E_SHORT);
    /* ACK with a short payload: the 2019 Go peer panics on these */
    for (size_t n = 5; n < 9; n++)
        assert_int_equal(mux_frame_decode(ack, n, 0, &f), MUX_E_LENGTH);
    assert_int_equal(mux_frame_decode(ack, 10, 0, &f), MUX_E_LENGTH);
    /* types above 3 without extensions; CLS (4) is never valid */
    for (int t = 4; t < 256; t++) {
        uint8_t m[9] = {(uint8_t)t, 0, 0, 0, 0, 0, 0, 0, 0};
        assert_int_equal(mux_frame_decode(m, 9, 0, &f), MUX_E_TYPE);
        if (t == MUX_RST || t == MUX_GOAWAY)
            assert_int_equal(mux_frame_decode(m, 9, 1, &f), 0);
        else
            assert_int_equal(mux_frame_decode(m, 9, 1, &f), MUX_E_TYPE);
    }
    /* SYN and FIN carry no payload; RST needs exactly 4 bytes */
    assert_int_equal(mux_frame_decode((const uint8_t *)"\x01\x00\x00\x00\x00x", 6, 0, &f), MUX_E_LENGTH);
    assert_int_equal(mux_frame_decode((const uint8_t *)"\x03\x00\x00\x00\x00x", 6, 0, &f), MUX_E_LENGTH);
    assert_int_equal(mux_frame_decode((const uint8_t *)"\x05\x00\x00\x00\x00xx", 7, 1, &f), MUX_E_LENGTH);
    assert_string_equal(mux_strerror(MUX_E_LENGTH), "wrong payload length for frame type");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_vectors),
        cmocka_unit_test(test_decode_vectors),
        cmocka_unit_test(test_decode_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

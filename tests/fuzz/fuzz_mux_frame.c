/* Fuzz target: the wsmux frame decoder, checked against the encoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mux/mux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int ext = 0; ext <= 1; ext++) {
        struct mux_frame f;
        if (mux_frame_decode(data, size, ext, &f) != 0)
            continue;
        if (f.payload != data + MUX_HEADER_LEN || f.len != size - MUX_HEADER_LEN)
            abort();
        if (f.type == MUX_DAT)
            continue;
        /* every other valid frame re-encodes to the same bytes */
        uint8_t out[MUX_MAX_CONTROL_LEN];
        size_t n = mux_frame_encode(out, (enum mux_frame_type)f.type, f.id, f.value);
        if (n != size || memcmp(out, data, n) != 0)
            abort();
    }
    return 0;
}

/* wsmux frame encoding and decoding: 5-byte header, then payload. */
#include "mux/mux.h"

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int mux_frame_decode(const uint8_t *msg, size_t len, int ext, struct mux_frame *f)
{
    if (len < MUX_HEADER_LEN)
        return MUX_E_SHORT;
    f->type = msg[0];
    f->id = get_le32(msg + 1);
    f->payload = msg + MUX_HEADER_LEN;
    f->len = len - MUX_HEADER_LEN;
    f->value = 0;
    switch (f->type) {
    case MUX_DAT: return 0;
    case MUX_SYN:
    case MUX_FIN: return f->len == 0 ? 0 : MUX_E_LENGTH;
    case MUX_ACK:
        if (f->len != 4)
            return MUX_E_LENGTH;
        f->value = get_le32(f->payload);
        return 0;
    case MUX_RST:
    case MUX_GOAWAY:
        if (!ext)
            return MUX_E_TYPE;
        if (f->len != 4)
            return MUX_E_LENGTH;
        f->value = get_le32(f->payload);
        return 0;
    default: return MUX_E_TYPE;
    }
}

size_t mux_frame_encode(uint8_t out[MUX_MAX_CONTROL_LEN], enum mux_frame_type type, uint32_t id,
                        uint32_t value)
{
    out[0] = (uint8_t)type;
    put_le32(out + 1, id);
    if (type == MUX_ACK || type == MUX_RST || type == MUX_GOAWAY) {
        put_le32(out + MUX_HEADER_LEN, value);
        return MUX_MAX_CONTROL_LEN;
    }
    return MUX_HEADER_LEN;
}

const char *mux_strerror(int err)
{
    switch (err) {
    case MUX_OK: return "ok";
    case MUX_E_SHORT: return "frame shorter than its header";
    case MUX_E_TYPE: return "unknown frame type";
    case MUX_E_LENGTH: return "wrong payload length for frame type";
    case MUX_E_FLOW: return "peer exceeded its flow-control credit";
    case MUX_E_PROTOCOL: return "frame not allowed in stream state";
    case MUX_E_NOMEM: return "out of memory";
    case MUX_E_LIMIT: return "stream limit reached";
    case MUX_E_CLOSED: return "stream or session closed";
    case MUX_E_TIMEOUT: return "stream not accepted in time";
    case MUX_E_RESET: return "stream reset by peer";
    case MUX_E_GOAWAY: return "session going away";
    case MUX_E_ABORTED: return "session aborted";
    case MUX_E_INVAL: return "invalid argument";
    }
    return "unknown mux error";
}

/*
 * Constants of the plugin <-> controller wire protocol (see PROTOCOL.md).
 *
 * Plain C so that both the plugin and the controller, and any other client,
 * can share one definition of the numbers.
 */
#ifndef PGBV_WIRE_H
#define PGBV_WIRE_H

#ifdef __cplusplus
extern "C" {
#endif

/* The only protocol version this tree speaks. */
#define PGBV_WIRE_VERSION 1

/* Bytes after the u32 length field: type byte + body. */
#define PGBV_WIRE_MAX_FRAME 8192
#define PGBV_WIRE_HEADER_SIZE 4

/* Field bounds, in bytes, without any terminator. */
#define PGBV_WIRE_MAX_SOFTWARE 64
#define PGBV_WIRE_MAX_ERROR_MESSAGE 512
#define PGBV_WIRE_MAX_SET 63
#define PGBV_WIRE_MAX_USERNAME 127
#define PGBV_WIRE_MAX_PASSWORD 1024
#define PGBV_WIRE_SQLSTATE_LEN 5

/* Message types. */
#define PGBV_MSG_HELLO 0x01
#define PGBV_MSG_ERROR 0x02
#define PGBV_MSG_CREDENTIALS 0x10
#define PGBV_MSG_SNAPSHOT_DONE 0x11
#define PGBV_MSG_DRAINED 0x20
#define PGBV_MSG_LOGIN_FAILED 0x21

/* ERROR codes. */
#define PGBV_ERR_VERSION 1
#define PGBV_ERR_PROTOCOL 2
#define PGBV_ERR_NOT_PERMITTED 3
#define PGBV_ERR_TOO_MANY_CLIENTS 4
#define PGBV_ERR_SHUTTING_DOWN 5

#ifdef __cplusplus
}
#endif

#endif /* PGBV_WIRE_H */

/* tap_peer: the host side of the virtio_net guest's tap test (tests/guest/virtio_net.c), as a
 * static program, so that it also runs where no Python is: inside the busybox initramfs of the
 * nested vhost-net test (tests/linux/test_vhost.py). It does what TAP_PEER of
 * tests/guest/test_virtio.py does, with the same output:
 *
 *   tap_peer IFNAME TOKEN
 *
 * binds a raw packet socket to IFNAME for EtherType 0x88b5, prints "ready", waits (60 s at most)
 * for the guest's frame, prints "caught <payload text> <source MAC>", then sends the frame
 * "host-reply TOKEN" back to that MAC every 100 ms, 300 times (about 30 s) or until killed: the
 * guest may not have posted its receive buffers yet when the first one arrives. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define ETHERTYPE_VIREO 0x88b5
#define PAYLOAD_MIN 46 /* an Ethernet frame's minimum payload, so no padding is left to chance */
#define TEXT_MAX 32    /* the guest's text fits here (the Python peer reads the same span) */
#define REPLIES 300
#define RECV_TIMEOUT_S 60

static int die(const char *what)
{
    fprintf(stderr, "tap_peer: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tap_peer IFNAME TOKEN\n");
        return 2;
    }
    const char *ifname = argv[1], *token = argv[2];
    unsigned ifindex = if_nametoindex(ifname);
    if (!ifindex)
        return die(ifname);

    int s = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_VIREO));
    if (s < 0)
        return die("socket(AF_PACKET)");
    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETHERTYPE_VIREO),
        .sll_ifindex = (int)ifindex,
    };
    if (bind(s, (struct sockaddr *)&sll, sizeof(sll)) < 0)
        return die("bind");
    /* A guest that never sends must not leave the peer waiting forever. */
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
    if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return die("SO_RCVTIMEO");

    /* The test reads these lines through a pipe or a file: each must be out at once. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    fflush(stdout);

    unsigned char frame[2048];
    ssize_t n = recv(s, frame, sizeof(frame), 0);
    if (n < 0)
        return die("recv");
    if (n < ETH_HLEN) {
        fprintf(stderr, "tap_peer: a %zd-byte frame is too short\n", n);
        return 1;
    }
    const unsigned char *src = frame + ETH_ALEN;
    size_t text_len = (size_t)n - ETH_HLEN < TEXT_MAX ? (size_t)n - ETH_HLEN : TEXT_MAX;
    while (text_len && frame[ETH_HLEN + text_len - 1] == 0)
        text_len--;
    printf("caught %.*s %02x:%02x:%02x:%02x:%02x:%02x\n", (int)text_len, frame + ETH_HLEN, src[0],
           src[1], src[2], src[3], src[4], src[5]);
    fflush(stdout);

    /* To the guest's MAC, from a locally administered one the guest does not check. */
    unsigned char reply[ETH_HLEN + PAYLOAD_MIN] = {0};
    static const unsigned char from[ETH_ALEN] = {0x02, 0, 0, 0, 0, 0x01};
    memcpy(reply, src, ETH_ALEN);
    memcpy(reply + ETH_ALEN, from, ETH_ALEN);
    reply[12] = ETHERTYPE_VIREO >> 8;
    reply[13] = ETHERTYPE_VIREO & 0xff;
    snprintf((char *)reply + ETH_HLEN, PAYLOAD_MIN, "host-reply %s", token);

    const struct timespec gap = {.tv_nsec = 100 * 1000 * 1000};
    for (int i = 0; i < REPLIES; i++) {
        /* Bound to the interface, so send() needs no address. */
        if (send(s, reply, sizeof(reply), 0) < 0)
            return die("send");
        nanosleep(&gap, NULL);
    }
    return 0;
}

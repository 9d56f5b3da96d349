/* LD_PRELOAD shim for pixdrop's benchmark: fsync and its kin return at once.
 *
 * The peers (@tus/server's FileStore, tuspyserver's default storage) never ask the kernel to
 * put a chunk on disk before they acknowledge it; pixdrop does, for every chunk, blob,
 * directory entry and SQLite commit. Run with this shim preloaded, pixdrop skips those
 * waits as the peers do, so the cost of durability can be read off the two figures.
 * Built by bench/peers at run time: cc -shared -fPIC -O2 -o nofsync.so nofsync.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
int syncfs(int fd) { (void)fd; return 0; }
void sync(void) {}
int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
    (void)fd; (void)offset; (void)nbytes; (void)flags;
    return 0;
}

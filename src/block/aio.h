/* The asynchronous request path (io_uring). Its interface (block_aio_*, block_submit,
 * block_drain) is declared in block/block.h, the one header users of the block layer include. */
#ifndef VIREO_BLOCK_AIO_H
#define VIREO_BLOCK_AIO_H

#include "block/block.h"

#endif

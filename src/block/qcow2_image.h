/* qcow2 whole-image operations (create, make empty, set backing, compressed writes). Their
 * interface is declared in block/qcow2.h with the rest of the qcow2 entry points. */
#ifndef VIREO_BLOCK_QCOW2_IMAGE_H
#define VIREO_BLOCK_QCOW2_IMAGE_H

#include "block/qcow2.h"

#endif

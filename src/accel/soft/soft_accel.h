/* The software CPU as an accelerator (struct accel_ops, see accel/accel.h): for hosts without
 * VT-x/AMD-V. `vireo run --accel soft` selects it, and `--accel auto` does on such hosts. */
#ifndef VIREO_ACCEL_SOFT_SOFT_ACCEL_H
#define VIREO_ACCEL_SOFT_SOFT_ACCEL_H

#include "accel/accel.h"

extern const struct accel_ops accel_soft_ops;

#endif

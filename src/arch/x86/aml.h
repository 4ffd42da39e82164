/* A small builder for ACPI Machine Language (the byte code of the DSDT) and for the resource
 * descriptors that _CRS buffers hold. It writes into a caller-supplied buffer; errors are sticky
 * (the first one is kept and later calls do nothing), so a table is built with straight-line code
 * and checked once with aml_finish(). Encodings follow ACPI 6.x chapters 6.4 and 20. */
#ifndef VIREO_ARCH_X86_AML_H
#define VIREO_ARCH_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

struct aml {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err;                    /* 0, or the first -errno met (-ENOSPC, -EINVAL) */
    unsigned depth;
    size_t open[AML_MAX_DEPTH]; /* where each open object's PkgLength placeholder starts */
};

/* Start building into buf[0..cap). */
void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* Bytes written so far, or the first error (-ENOSPC: out of room; -EINVAL: a bad name, a
 * value out of range, or objects left open). */
int aml_finish(const struct aml *a);

/* Raw bytes, for encodings the builder has no helper for. */
void aml_bytes(struct aml *a, const void *data, size_t n);
/* A NameString: "\\_SB.PCI0", "^FOO", "_S5". Segments shorter than 4 are padded with '_'. */
void aml_name_string(struct aml *a, const char *path);
/* An Integer in its shortest encoding (Zero/One/Ones, Byte, Word, DWord or QWord constant). */
void aml_integer(struct aml *a, uint64_t value);
/* A String constant (ASCII, NUL-terminated in the AML). */
void aml_string(struct aml *a, const char *s);
/* A compressed EISA id ("PNP0A03") as a DWord constant, as ASL's EisaId() produces. */
void aml_eisaid(struct aml *a, const char *id);
/* A Buffer object holding data[0..n). */
void aml_buffer(struct aml *a, const void *data, size_t n);

/* Name(path, <the next object emitted>). */
void aml_name(struct aml *a, const char *path);
/* Return(<the next object emitted>). */
void aml_return(struct aml *a);

/* Objects with a body. Each begin is closed by one aml_end(), innermost first. */
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *path);
/* Method(path, nargs, serialized ? Serialized : NotSerialized). */
void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized);
/* Package(nelems) { the next nelems objects }. */
void aml_package_begin(struct aml *a, unsigned nelems);
void aml_end(struct aml *a);

/* A resource template (the contents of a _CRS buffer), assembled apart from the AML stream
 * because a Buffer's size has to be known before its bytes. */
#define AML_RES_MAX 512
struct aml_res {
    uint8_t buf[AML_RES_MAX];
    size_t len;
    int err;
};

void aml_res_init(struct aml_res *r);
/* IO(Decode16, min, max, align, len): a fixed or relocatable I/O port range the device uses. */
void aml_res_io(struct aml_res *r, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags() {irq}: an ISA IRQ, edge-triggered, active high, exclusive. */
void aml_res_irq_noflags(struct aml_res *r, unsigned irq);
/* Interrupt(ResourceConsumer, edge ? Edge : Level, low ? ActiveLow : ActiveHigh, Exclusive)
 * {gsi}. */
void aml_res_interrupt(struct aml_res *r, uint32_t gsi, bool edge, bool active_low);
/* Memory32Fixed(ReadWrite, base, len). */
void aml_res_memory32_fixed(struct aml_res *r, uint32_t base, uint32_t len);

/* Address-space descriptors as a root bridge's _CRS lists its windows: ResourceProducer,
 * PosDecode, MinFixed, MaxFixed, granularity 0, no translation, length max - min + 1. */
void aml_res_word_bus(struct aml_res *r, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml_res *r, uint16_t min, uint16_t max);
void aml_res_dword_io(struct aml_res *r, uint32_t min, uint32_t max);
void aml_res_dword_memory(struct aml_res *r, uint32_t min, uint32_t max, bool cacheable);
void aml_res_qword_memory(struct aml_res *r, uint64_t min, uint64_t max, bool cacheable);

/* Emit the template, followed by its End Tag, as a Buffer object. */
void aml_resource_template(struct aml *a, const struct aml_res *r);

#endif

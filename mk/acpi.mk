# ACPI tables: acpi-dump writes every generated table to a directory so that
# tests/cli/test_acpi_iasl.py can check each one with iasl (acpica-tools).
ACPI_DUMP := $(BUILD)/acpi-dump

$(ACPI_DUMP): tests/tools/acpi_dump.c $(LIBVIREO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBVIREO) $(LDLIBS)

# The pytest run of `make check` finds the tool here whatever BUILD is.
export VIREO_ACPI_DUMP := $(abspath $(ACPI_DUMP))
CHECK_DEPS += $(ACPI_DUMP)

.PHONY: acpi-check
acpi-check: $(ACPI_DUMP)
	$(PYTEST) -q tests/cli/test_acpi_iasl.py

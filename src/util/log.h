/* Logging: quiet by default (warnings and errors only), one line per message, prefixed with the
 * VM's name so that many guests' logs can share one journal. */
#ifndef VIREO_UTIL_LOG_H
#define VIREO_UTIL_LOG_H

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Set the most verbose level that is printed (default LOG_WARN). */
void log_set_level(enum log_level level);
/* Parse "err|warn|info|debug"; returns -EINVAL for anything else. */
int log_parse_level(const char *name, enum log_level *out);
/* Name printed before every message (the VM name); the string is copied. */
void log_set_name(const char *name);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif

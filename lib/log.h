/* log.h - one-line logs on stderr: "2026-11-22T10:00:00.123 ident[pid] level: message".
 * Messages say what happened and what the operator should do about it. */
#ifndef COLO_LIB_LOG_H
#define COLO_LIB_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };

/* ident is kept by pointer; pass a string that outlives logging. */
void log_init(const char *ident, enum log_level min_level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
enum log_level log_get_level(void);
/* Parse "debug|info|warn|err"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)

#endif

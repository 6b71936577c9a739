/*
 * opstream secret files: passwords are read from the first line of a file
 * (a Docker or Kubernetes secret, a 0600 file) at the moment a client is
 * built, so they never sit in argv, the environment or a properties file.
 */
#include "secret_priv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err_priv.h"

/* A line longer than the buffer is refused rather than cut: a cut password
 * would fail later with a far less helpful "wrong password". */
int ops_secret_read_file(const char *what, const char *path, char *buf, size_t bufsize,
                         char *errstr, size_t errstr_size) {
    int rc = -1;
    size_t n;
    FILE *fp = fopen(path, "r");

    if (fp == NULL) {
        ops_err_format(errstr, errstr_size, "%s '%s': %s", what, path, strerror(errno));
        goto cleanup;
    }
    if (fgets(buf, (int)bufsize, fp) == NULL) {
        ops_err_format(errstr, errstr_size, "%s '%s': %s", what, path,
                       ferror(fp) ? strerror(errno) : "empty file");
        goto cleanup;
    }
    n = strlen(buf);
    if (n == bufsize - 1 && buf[n - 1] != '\n' && !feof(fp)) {
        ops_err_format(errstr, errstr_size, "%s '%s': first line longer than %zu bytes", what, path,
                       bufsize - 2);
        goto cleanup;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n == 0) {
        ops_err_format(errstr, errstr_size, "%s '%s': first line is empty", what, path);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (fp != NULL)
        fclose(fp);
    if (rc != 0)
        memset(buf, 0, bufsize);
    return rc;
}

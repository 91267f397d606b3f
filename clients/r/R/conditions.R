# Conditions signalled by the package. Every error inherits from
# `linksight_error`, so one handler catches them all:
#
# linksight_error
#   linksight_argument_error     an argument is missing or invalid; fix the call
#   linksight_connection_error   the hub could not be reached; retrying may help
#   linksight_http_error         the hub returned an error status; also has the
#                                class `linksight_<code>` for the hub's code,
#                                such as `linksight_not_found`
#   linksight_request_error      a request ended rejected, failed, revoked or
#                                expired; resubmitting unchanged will not help
#   linksight_decryption_error   a sealed result was altered, sealed to another
#                                key, or differs between stations
#   linksight_timeout            a request did not finish within the timeout;
#                                wait for it again with the same id
#
# Warnings: `linksight_blocked` when disclosure control blocked a result.
# Messages: `linksight_progress` for each change while waiting.

linksight_condition <- function(message, class, base, call, ...) {
  structure(
    class = c(class, base, "condition"),
    list(message = message, call = call, ...)
  )
}

abort <- function(message, class, ..., call = sys.call(-1)) {
  stop(linksight_condition(
    message, c(class, "linksight_error"), "error", call, ...
  ))
}

argument_error <- function(message, call = sys.call(-1)) {
  abort(message, "linksight_argument_error", call = call)
}

check_string <- function(value, name) {
  if (!is.character(value) || length(value) != 1L || is.na(value) ||
      !nzchar(value)) {
    argument_error(
      sprintf("`%s` must be a non-empty string, not %s", name, describe(value)),
      call = sys.call(-1)
    )
  }
}

check_request_id <- function(request) {
  id <- request_id(request)
  if (length(id) != 1L || is.na(id) || id < 1 || id != round(id)) {
    argument_error(
      sprintf(
        "`request` must be a request returned by lks_submit() or a positive whole request id, not %s",
        describe(request)
      ),
      call = sys.call(-1)
    )
  }
  as.integer(id)
}

check_connection <- function(conn) {
  if (!inherits(conn, "linksight_connection")) {
    argument_error(
      sprintf(
        "`conn` must be a connection made by lks_connect(), not %s",
        describe(conn)
      ),
      call = sys.call(-1)
    )
  }
}

describe <- function(value) {
  if (is.null(value)) {
    return("NULL")
  }
  if (is.atomic(value) && length(value) == 1L) {
    return(paste0(class(value)[1], " ", deparse(value)))
  }
  sprintf("an object of class %s and length %d",
          paste(class(value), collapse = "/"), length(value))
}

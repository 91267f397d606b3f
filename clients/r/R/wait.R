#' Wait for a request to finish
#'
#' Polls the hub until the request is completed or blocked by disclosure
#' control, and reports each change on the way: the stewards' approvals,
#' then each station's progress on the task.
#'
#' @inheritParams lks_request
#' @param timeout Seconds to wait before giving up. The request goes on at
#'   the hub, so you can wait for it again later.
#' @param interval Seconds between two polls.
#' @param progress Whether to report each change as a message of class
#'   `linksight_progress`.
#' @return The finished `linksight_request`, in state `completed` or
#'   `blocked_by_disclosure_control`; read its result with [lks_result()].
#' @section Errors:
#' A request that ends rejected, failed, revoked or expired raises a
#' `linksight_request_error` whose message gives the reason and whose
#' `request` field holds the request. Running out of time raises a
#' `linksight_timeout` that says what the request was still waiting for.
#' @export
lks_wait <- function(conn, request, timeout = 600, interval = 1, progress = TRUE) {
  check_connection(conn)
  id <- check_request_id(request)
  check_positive(timeout, "timeout")
  check_positive(interval, "interval")
  deadline <- Sys.time() + timeout
  reported <- ""
  repeat {
    current <- lks_request(conn, id)
    line <- describe_progress(current)
    if (progress && !identical(line, reported)) {
      report_progress(sprintf("request %d: %s", id, line))
      reported <- line
    }
    if (current$state %in% c("completed", "blocked_by_disclosure_control")) {
      return(current)
    }
    if (current$state %in% c("rejected", "failed", "revoked", "expired")) {
      request_error(current)
    }
    if (Sys.time() + interval > deadline) {
      abort(
        sprintf(
          "request %d is still %s after %s s (%s); wait again with lks_wait(conn, %d) or revoke it with lks_revoke(conn, %d)",
          id, current$state, format(timeout), progress_detail(current), id, id
        ),
        "linksight_timeout",
        request = current
      )
    }
    Sys.sleep(interval)
  }
}

check_positive <- function(value, name) {
  if (!is.numeric(value) || length(value) != 1L || is.na(value) || value <= 0) {
    argument_error(
      sprintf("`%s` must be a positive number of seconds, not %s", name,
              describe(value)),
      call = sys.call(-1)
    )
  }
}

report_progress <- function(text) {
  message(linksight_condition(
    paste0(text, "\n"), "linksight_progress", "message", call = NULL
  ))
}

#' Submit a query
#'
#' Sends a query to the hub, which parses it, checks it against the
#' collaboration's rules and passes it to the data stewards for approval.
#' Follow it with [lks_wait()] and read the outcome with [lks_result()], or
#' do all three with [lks_query()].
#'
#' @inheritParams lks_collaborations
#' @param query The query, such as
#'   `"SELECT mean(age), var(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex"`.
#'   Statistics are `count(*)`, `count(col)`, `sum(col)`, `mean(col)`,
#'   `var(col)` and `crosstab(col1, col2)`.
#' @param purpose Why you need the answer. The stewards read it, and the
#'   audit trail records it with every step of the request.
#' @inheritParams lks_collaboration
#' @return A `linksight_request`, usually in state `awaiting_approval`.
#' @section Errors:
#' A query that does not parse raises a `linksight_invalid_query` error
#' whose message points at the offending text. A query that breaks a rule
#' of the collaboration is stored by the hub as rejected, and raises a
#' `linksight_request_error` that names the rule; its `request` field holds
#' the rejected request.
#' @export
lks_submit <- function(conn, query, purpose, collaboration = NULL) {
  check_connection(conn)
  check_string(query, "query")
  check_string(purpose, "purpose")
  collaboration <- choose_collaboration(conn, collaboration)
  register_result_key(conn)
  body <- list(collaboration = collaboration, query = query, purpose = purpose)
  request <- as_request(hub_request(conn, "POST", "requests", body = body))
  # NOTE: the test network's rules reject no query that parses, so no test
  # reaches this branch; request_error() is tested with a steward's rejection.
  if (request$state == "rejected") {
    request_error(request)
  }
  request
}

#' Read a request
#'
#' @inheritParams lks_collaborations
#' @param request A request from [lks_submit()] or [lks_requests()], or its id.
#' @return A `linksight_request`: a list with the `id`, `state`, `query`,
#'   `purpose`, the stewards' `approvals` (a data frame), the
#'   `touched_organisations` whose approval it needs, the `parties` (each
#'   station's progress on the task, a data frame), the `rejection` (rule
#'   and message) or `error` if any, and the times `created_at`,
#'   `updated_at` and `expires_at`.
#' @export
lks_request <- function(conn, request) {
  check_connection(conn)
  id <- check_request_id(request)
  as_request(hub_request(conn, "GET", c("requests", id)))
}

#' List requests
#'
#' A scientist sees their own requests, a steward those that touch their
#' organisation, and an admin all.
#'
#' @inheritParams lks_collaborations
#' @param state Only requests in this state, such as `"awaiting_approval"`;
#'   `NULL` for all.
#' @return A data frame with one row per request: `id`, `collaboration`,
#'   `dataset`, `state`, `submitter`, `submitter_organisation`, `purpose`,
#'   `query`, `created_at` and `updated_at`.
#' @export
lks_requests <- function(conn, state = NULL) {
  check_connection(conn)
  query <- list()
  if (!is.null(state)) {
    check_string(state, "state")
    query$state <- state
  }
  records <- hub_request(conn, "GET", "requests", query = query)
  records_frame(records, list(
    id = integer(),
    collaboration = character(),
    dataset = character(),
    state = character(),
    submitter = character(),
    submitter_organisation = character(),
    purpose = character(),
    query = character(),
    created_at = parse_time(character()),
    updated_at = parse_time(character())
  ))
}

#' Decide on a request as a data steward
#'
#' `lks_approve()` approves a request for your organisation; when every
#' organisation it touches has approved, the hub signs the task and the
#' stations run it. `lks_reject()` rejects it with a reason that the
#' submitter reads. `lks_revoke()` withdraws a request that has not started,
#' as its submitter or a steward of an organisation it touches. The hub
#' decides who may do what, and raises a `linksight_forbidden` error with
#' its reason otherwise.
#'
#' @inheritParams lks_request
#' @param reason Why you decided so; recorded in the audit trail. Required
#'   for a rejection.
#' @return The updated `linksight_request`.
#' @export
lks_approve <- function(conn, request, reason = "") {
  decide(conn, request, "approve", reason)
}

#' @rdname lks_approve
#' @export
lks_reject <- function(conn, request, reason) {
  check_string(reason, "reason")
  decide(conn, request, "reject", reason)
}

#' @rdname lks_approve
#' @export
lks_revoke <- function(conn, request, reason = "") {
  decide(conn, request, "revoke", reason)
}

decide <- function(conn, request, action, reason) {
  check_connection(conn)
  id <- check_request_id(request)
  if (!is.character(reason) || length(reason) != 1L || is.na(reason)) {
    argument_error(
      sprintf("`reason` must be a string, not %s", describe(reason)),
      call = sys.call(-1)
    )
  }
  as_request(hub_request(
    conn, "POST", c("requests", id, action),
    body = list(reason = reason), call = sys.call(-1)
  ))
}

request_id <- function(request) {
  if (inherits(request, "linksight_request")) {
    return(request$id)
  }
  if (is.numeric(request)) {
    return(request)
  }
  NA
}

as_request <- function(record) {
  record$approvals <- records_frame(record$approvals, list(
    organisation = character(),
    steward = character(),
    decision = character(),
    reason = character(),
    time = parse_time(character())
  ))
  record$parties <- records_frame(record$parties, list(
    station = character(),
    organisation = character(),
    status = character(),
    reported_at = parse_time(character())
  ))
  record$touched_organisations <- strings(record$touched_organisations)
  for (field in c("created_at", "updated_at", "expires_at")) {
    record[[field]] <- parse_time(record[[field]])
  }
  structure(record, class = "linksight_request")
}

#' @export
format.linksight_request <- function(x, ...) {
  lines <- c(
    sprintf("<linksight request %d in %s: %s>", x$id, x$collaboration, x$state),
    paste("query:", x$query),
    paste("purpose:", x$purpose),
    paste("progress:", describe_progress(x))
  )
  if (!is.null(x$rejection)) {
    lines <- c(lines, sprintf("rejected by rule %s: %s", x$rejection$rule,
                              x$rejection$message))
  }
  if (!is.null(x$error)) {
    lines <- c(lines, paste("error:", x$error))
  }
  lines
}

#' @export
print.linksight_request <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

# One line on where a request stands: its state, who has approved, and which
# stations have reported on its task.
describe_progress <- function(request) {
  paste0(request$state, ", ", progress_detail(request))
}

progress_detail <- function(request) {
  approved <- request$approvals$organisation[
    request$approvals$decision == "approved"
  ]
  touched <- request$touched_organisations
  approvals <- sprintf(
    "approved by %d of %d organisations", length(approved), length(touched)
  )
  waiting <- setdiff(touched, approved)
  if (request$state == "awaiting_approval" && length(waiting) > 0L) {
    approvals <- paste0(approvals, "; waiting for ", paste(waiting, collapse = ", "))
  }
  if (nrow(request$parties) == 0L ||
      request$state %in% c("submitted", "awaiting_approval", "rejected")) {
    return(approvals)
  }
  stations <- paste(request$parties$station, request$parties$status,
                    collapse = ", ")
  paste0(approvals, "; stations: ", stations)
}

request_error <- function(request, call = sys.call(-1)) {
  message <- switch(
    request$state,
    rejected = sprintf(
      "request %d was rejected by rule %s: %s",
      request$id, request$rejection$rule, request$rejection$message
    ),
    failed = sprintf(
      "request %d failed: %s; nothing was revealed, so submitting it again is safe",
      request$id, request$error
    ),
    revoked = sprintf(
      "request %d was revoked before it ran; submit it again", request$id
    ),
    expired = sprintf(
      "request %d expired before it ran (at %s, %s); submit it again",
      request$id, format(request$expires_at, usetz = TRUE),
      progress_detail(request)
    ),
    sprintf("request %d ended in state %s", request$id, request$state)
  )
  abort(
    message,
    "linksight_request_error",
    request = request,
    state = request$state,
    call = call
  )
}

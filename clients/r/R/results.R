#' Read the result of a finished request
#'
#' Only the submitter of a request (or a hub admin) may read its result, and
#' only once it is completed or blocked by disclosure control. The stations
#' seal the result to your result key, so the hub relays it without being
#' able to read it; it is opened here with the key in
#' [lks_result_key_path()]. A result that was altered on the way, or sealed
#' to another key, raises a `linksight_decryption_error`.
#'
#' The stations checked every figure inside the secure computation before
#' revealing it: by default each must rest on at least 10 persons, and a
#' variance on at least 2 values. When a check fails, nothing is revealed:
#' the result has no rows, its `status` is `"blocked"`, and a warning of
#' class `linksight_blocked` gives the rule and the failing cells.
#'
#' @inheritParams lks_request
#' @return A data frame of class `linksight_result` with one row per group:
#'   the `GROUP BY` columns, then one column per statistic, named as in the
#'   query, such as `mean(age)`. Its attributes hold the rest of the result:
#'   \describe{
#'     \item{`n`}{A data frame of the same shape with the number of persons
#'       behind each figure: the values that are not missing for a mean,
#'       variance or sum, and the count itself for `count(*)`.}
#'     \item{`checks`}{A data frame with one row per disclosure check: the
#'       `rule`, the `statistic`, the `GROUP BY` columns of its cell, and
#'       whether it `passed`.}
#'     \item{`group_by`}{The names of the `GROUP BY` columns.}
#'     \item{`status`}{`"released"` or `"blocked"`.}
#'     \item{`blocked`}{For a blocked result, a list with the `rule` that
#'       failed, the `message` and the number of `failed` checks.}
#'     \item{`min_count`}{The minimum number of persons the checks applied.}
#'     \item{`stations`}{The stations that computed the result.}
#'     \item{`request_id`, `query`}{The request and its query.}
#'     \item{`sha256`, `audit_seq`}{The hash of the result document and the
#'       hub's audit record that stores it.}
#'   }
#' @export
lks_result <- function(conn, request) {
  check_connection(conn)
  id <- check_request_id(request)
  reply <- hub_request(conn, "GET", c("requests", id, "result"))
  document <- open_result(conn, reply$result, id)
  result <- result_frame(document, reply$request_id, reply$audit_seq)
  if (attr(result, "status") == "blocked") {
    warning(linksight_condition(
      sprintf("request %d: %s", id, attr(result, "blocked")$message),
      "linksight_blocked", c("warning"),
      call = NULL, result = result
    ))
  }
  result
}

#' Submit a query, wait for it and read its result
#'
#' Runs [lks_submit()], [lks_wait()] and [lks_result()] in turn. The wait
#' includes the stewards' approval, which may take longer than the timeout;
#' the request then stays at the hub, and the `linksight_timeout` error
#' holds it in its `request` field.
#'
#' @inheritParams lks_submit
#' @inheritParams lks_wait
#' @return The result as from [lks_result()].
#' @examples
#' \dontrun{
#' conn <- lks_connect()
#' ages <- lks_query(
#'   conn,
#'   "SELECT mean(age), var(age) FROM lung GROUP BY sex",
#'   purpose = "describe the study population"
#' )
#' ages
#' attr(ages, "n")
#' }
#' @export
lks_query <- function(conn, query, purpose, collaboration = NULL, timeout = 600,
                      interval = 1, progress = TRUE) {
  request <- lks_submit(conn, query, purpose, collaboration)
  lks_wait(conn, request, timeout = timeout, interval = interval,
           progress = progress)
  lks_result(conn, request)
}

# Turn the result document that the stations built into a data frame. Each
# row of the document holds the GROUP BY values, each statistic under its
# label and, for a statistic of a column, its n under "<label>.n".
result_frame <- function(document, request_id, audit_seq) {
  group_by <- strings(document$group_by)
  statistics <- statistic_labels(document, group_by)
  rows <- document$rows
  values <- list()
  n <- list()
  for (column in group_by) {
    values[[column]] <- column_values(rows, column)
    n[[column]] <- values[[column]]
  }
  for (label in statistics) {
    is_count <- startsWith(label, "count(")
    values[[label]] <- vapply(
      rows, function(row) scalar_or_na(row[[label]], NA_real_), double(1)
    )
    n_label <- paste0(label, ".n")
    n[[label]] <- vapply(rows, function(row) {
      scalar_or_na(if (is.null(row[[n_label]])) row[[label]] else row[[n_label]],
                   NA_integer_)
    }, integer(1))
    if (is_count) {
      values[[label]] <- as.integer(values[[label]])
    }
  }
  frame <- as_frame(values, group_by, statistics)
  structure(
    frame,
    n = as_frame(n, group_by, statistics),
    checks = checks_frame(document$checks, group_by),
    group_by = group_by,
    status = document$status,
    blocked = document$blocked,
    min_count = document$min_count,
    stations = strings(document$stations),
    request_id = request_id,
    query = document$query,
    sha256 = document$sha256,
    audit_seq = audit_seq,
    class = c("linksight_result", "data.frame")
  )
}

# The statistics in the order of the query. A blocked result has no columns,
# so its statistics are those that the checks name.
statistic_labels <- function(document, group_by) {
  columns <- strings(document$columns)
  if (length(columns) == 0L) {
    checked <- vapply(document$checks, function(check) check$statistic, "")
    return(unique(checked))
  }
  columns[!columns %in% group_by & !columns %in% paste0(columns, ".n")]
}

# The values of field `name` in each of `records`, as one vector; NA where
# a record lacks it, and an integer(0) when there are no records.
column_values <- function(records, name) {
  values <- lapply(records, function(record) {
    if (is.null(record[[name]])) NA else record[[name]]
  })
  if (length(values) == 0L) {
    return(integer(0))
  }
  unlist(values)
}

as_frame <- function(columns, group_by, statistics) {
  frame <- as.data.frame(
    columns[c(group_by, statistics)],
    stringsAsFactors = FALSE,
    check.names = FALSE,
    optional = TRUE
  )
  rownames(frame) <- NULL
  frame
}

checks_frame <- function(checks, group_by) {
  frame <- records_frame(checks, list(rule = character(), statistic = character()))
  cells <- lapply(checks, function(check) check$cell)
  for (column in group_by) {
    frame[[column]] <- column_values(cells, column)
  }
  frame$passed <- vapply(checks, function(check) isTRUE(check$passed), logical(1))
  frame
}

#' @export
print.linksight_result <- function(x, ...) {
  cat(sprintf(
    "<linksight result of request %d: %s>\n", attr(x, "request_id"),
    attr(x, "status")
  ))
  cat(attr(x, "query"), "\n", sep = "")
  if (identical(attr(x, "status"), "blocked")) {
    cat(attr(x, "blocked")$message, "\n", sep = "")
  } else {
    print(as.data.frame(strip_result(x)), row.names = FALSE)
  }
  cat(disclosure_notes(x), sep = "\n")
  invisible(x)
}

strip_result <- function(x) {
  attributes(x) <- attributes(x)[c("names", "row.names", "class")]
  class(x) <- "data.frame"
  x
}

disclosure_notes <- function(x) {
  checks <- attr(x, "checks")
  rules <- paste(unique(checks$rule), collapse = ", ")
  notes <- sprintf(
    "Disclosure control: %d of %d checks passed (rules: %s; minimum %d persons per figure).",
    sum(checks$passed), nrow(checks), rules, attr(x, "min_count")
  )
  n <- attr(x, "n")
  statistics <- setdiff(names(n), attr(x, "group_by"))
  if (nrow(n) > 0L && length(statistics) > 0L) {
    counts <- range(unlist(n[statistics]))
    persons <- if (counts[1] == counts[2]) {
      sprintf("%d persons", counts[1])
    } else {
      sprintf("%d to %d persons", counts[1], counts[2])
    }
    notes <- c(notes, sprintf(
      "Each figure rests on %s; attr(, \"n\") has the n of each.", persons
    ))
  }
  c(notes, sprintf(
    "Computed under MPC by %s.", paste(attr(x, "stations"), collapse = ", ")
  ))
}

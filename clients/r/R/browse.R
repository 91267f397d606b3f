#' List your collaborations
#'
#' Lists the collaborations that your organisation is a member of (all of
#' them for a hub admin).
#'
#' @param conn A connection from [lks_connect()].
#' @return A data frame with one row per collaboration: its `name` and its
#'   `members`, the organisation names separated by commas.
#' @export
lks_collaborations <- function(conn) {
  check_connection(conn)
  records <- hub_request(conn, "GET", "collaborations")
  frame <- records_frame(records, list(name = character()))
  frame$members <- vapply(
    records, function(record) paste(strings(record$members), collapse = ", "), ""
  )
  frame
}

# Return `collaboration`, or the caller's only collaboration when it is NULL.
choose_collaboration <- function(conn, collaboration, call = sys.call(-1)) {
  if (!is.null(collaboration)) {
    check_string(collaboration, "collaboration")
    return(collaboration)
  }
  names <- vapply(hub_request(conn, "GET", "collaborations"), function(c) c$name, "")
  if (length(names) == 1L) {
    return(names)
  }
  if (length(names) == 0L) {
    abort(
      "your organisation is a member of no collaboration; ask the hub admin to add it to one",
      "linksight_argument_error",
      call = call
    )
  }
  abort(
    sprintf(
      "choose a collaboration: you are a member of %s; pass `collaboration`",
      paste(names, collapse = ", ")
    ),
    "linksight_argument_error",
    call = call
  )
}

#' Describe one collaboration
#'
#' @inheritParams lks_collaborations
#' @param collaboration The collaboration's name. `NULL` chooses your only
#'   collaboration, and raises an error if you are a member of several.
#' @return A `linksight_collaboration`: a list with the `name`, the
#'   `members`, the `rules` the members agreed on (such as `min_count`, the
#'   minimum number of persons behind every released figure), the `stations`
#'   (a data frame with the time each was `last_seen` by the hub) and the
#'   `datasets` (as from [lks_datasets()]).
#' @export
lks_collaboration <- function(conn, collaboration = NULL) {
  check_connection(conn)
  collaboration <- choose_collaboration(conn, collaboration)
  detail <- hub_request(conn, "GET", c("collaborations", collaboration))
  structure(
    list(
      name = detail$name,
      members = strings(detail$members),
      rules = lapply(detail$rules, function(rule) {
        if (is.list(rule)) strings(rule) else rule
      }),
      stations = records_frame(detail$stations, list(
        name = character(),
        organisation = character(),
        last_seen = parse_time(character())
      )),
      datasets = datasets_frame(detail$datasets)
    ),
    class = "linksight_collaboration"
  )
}

#' @export
print.linksight_collaboration <- function(x, ...) {
  cat(sprintf("<linksight collaboration %s>\n", x$name))
  cat("members:", paste(x$members, collapse = ", "), "\n")
  rules <- vapply(x$rules, function(rule) paste(rule, collapse = ", "), "")
  cat("rules:", paste(names(rules), rules, sep = " = ", collapse = "; "), "\n")
  cat("stations:\n")
  print(x$stations, row.names = FALSE)
  cat("datasets:\n")
  print(x$datasets, row.names = FALSE)
  invisible(x)
}

#' List a collaboration's datasets
#'
#' @inheritParams lks_collaboration
#' @return A data frame with one row per dataset: its `name`, `description`,
#'   number of `columns`, and the `stations` that hold it, separated by
#'   commas.
#'   [lks_schema()] returns the columns themselves.
#' @export
lks_datasets <- function(conn, collaboration = NULL) {
  check_connection(conn)
  collaboration <- choose_collaboration(conn, collaboration)
  records <- hub_request(conn, "GET", c("collaborations", collaboration, "datasets"))
  datasets_frame(records)
}

datasets_frame <- function(records) {
  frame <- records_frame(records, list(name = character()))
  frame$stations <- vapply(
    records, function(record) paste(strings(record$stations), collapse = ", "), ""
  )
  frame$description <- vapply(
    records, function(record) scalar_or_na(record$schema$description, NA_character_), ""
  )
  frame$columns <- vapply(
    records, function(record) length(record$schema$columns), integer(1)
  )
  frame[c("name", "description", "columns", "stations")]
}

#' Show a dataset's schema
#'
#' A schema is public metadata: the columns, their types, roles and allowed
#' ranges or levels. It never contains a value of the data.
#'
#' @param dataset The dataset's name, as in the `FROM` clause of a query.
#' @inheritParams lks_collaboration
#' @return A data frame with one row per column: `name`, `type` (such as
#'   integer or categorical), `role`, `description`, `nullable`,
#'   the declared `min` and `max` of a numeric column, and the `levels` of a
#'   categorical column (a list column). The attributes `dataset`,
#'   `description` and `max_rows` describe the dataset.
#' @export
lks_schema <- function(conn, dataset, collaboration = NULL) {
  check_connection(conn)
  check_string(dataset, "dataset")
  collaboration <- choose_collaboration(conn, collaboration)
  records <- hub_request(conn, "GET", c("collaborations", collaboration, "datasets"))
  names <- vapply(records, function(record) record$name, "")
  if (!dataset %in% names) {
    available <- if (length(names) > 0L) paste(names, collapse = ", ") else "none"
    abort(
      sprintf(
        "dataset %s not found in collaboration %s; its datasets are: %s",
        deparse(dataset), deparse(collaboration), available
      ),
      "linksight_argument_error"
    )
  }
  schema <- records[[match(dataset, names)]]$schema
  frame <- records_frame(schema$columns, list(
    name = character(),
    type = character(),
    role = character(),
    description = character(),
    nullable = logical(),
    min = double(),
    max = double(),
    levels = list()
  ))
  attr(frame, "dataset") <- schema$name
  attr(frame, "description") <- scalar_or_na(schema$description, NA_character_)
  attr(frame, "max_rows") <- scalar_or_na(schema$max_rows, NA_integer_)
  frame
}

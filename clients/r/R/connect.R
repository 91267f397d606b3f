#' Connect to a Linksight hub
#'
#' Checks that the hub responds and that it accepts the token, and returns a
#' connection for the other `lks_` functions. The token is kept in the
#' connection but never printed.
#'
#' @param url The hub's base URL, such as `"http://127.0.0.1:8700"`. Defaults
#'   to the environment variable `LINKSIGHT_HUB_URL`.
#' @param token Your API token, which the hub's admin gave you. Defaults to
#'   the environment variable `LINKSIGHT_TOKEN`, which keeps it out of
#'   scripts and their history.
#' @param timeout Seconds to wait for each reply of the hub.
#' @return A `linksight_connection`: a list with the `url`, the hub's
#'   `version`, and your `user` name, `organisation` and `roles`.
#' @examples
#' \dontrun{
#' Sys.setenv(LINKSIGHT_HUB_URL = "http://127.0.0.1:8700")
#' Sys.setenv(LINKSIGHT_TOKEN = "...")
#' conn <- lks_connect()
#' conn
#' }
#' @export
lks_connect <- function(url = Sys.getenv("LINKSIGHT_HUB_URL"),
                        token = Sys.getenv("LINKSIGHT_TOKEN"),
                        timeout = 30) {
  if (!is.character(url) || length(url) != 1L || is.na(url) || !nzchar(url)) {
    argument_error(
      "no hub URL: pass `url`, such as lks_connect(\"http://127.0.0.1:8700\"), or set the environment variable LINKSIGHT_HUB_URL"
    )
  }
  if (!grepl("^https?://", url)) {
    argument_error(sprintf(
      "invalid hub URL %s: it must start with http:// or https://, such as \"http://127.0.0.1:8700\"",
      deparse(url)
    ))
  }
  if (!is.character(token) || length(token) != 1L || is.na(token) ||
      !nzchar(token)) {
    argument_error(
      "no API token: pass `token` or set the environment variable LINKSIGHT_TOKEN; the hub's admin issues tokens"
    )
  }
  check_positive(timeout, "timeout")
  conn <- structure(
    list(url = sub("/+$", "", url), token = token, timeout = timeout),
    class = "linksight_connection"
  )
  health <- hub_request(conn, "GET", "health", token = NULL)
  me <- hub_request(conn, "GET", c("users", "me"))
  conn$version <- health$version
  conn$user <- me$name
  conn$organisation <- me$organisation
  conn$roles <- as.character(unlist(me$roles))
  conn
}

#' @export
format.linksight_connection <- function(x, ...) {
  roles <- if (length(x$roles) > 0L) paste(x$roles, collapse = ", ") else "none"
  c(
    sprintf("<linksight connection to %s (hub %s)>", x$url, x$version),
    sprintf("user: %s of %s; roles: %s", x$user, x$organisation, roles)
  )
}

#' @export
print.linksight_connection <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

#' @importFrom utils str
#' @export
str.linksight_connection <- function(object, ...) {
  cat(format(object), sep = "\n")
  invisible(NULL)
}

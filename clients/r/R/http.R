# Every call to the hub goes through hub_request(), so that authentication,
# timeouts and the translation of errors into R conditions live in one place.
# `segments` are the parts of the path, each percent-encoded here, such as
# c("collaborations", name, "datasets").
hub_request <- function(conn, method, segments, body = NULL, query = list(),
                        token = conn$token, call = sys.call(-1)) {
  encoded <- vapply(as.character(segments), utils::URLencode, "", reserved = TRUE)
  path <- paste0("/", paste(encoded, collapse = "/"))
  request <- httr2::request(conn$url)
  request <- httr2::req_url_path_append(request, path)
  if (length(query) > 0L) {
    request <- do.call(httr2::req_url_query, c(list(request), query))
  }
  request <- httr2::req_method(request, method)
  request <- httr2::req_user_agent(request, user_agent())
  request <- httr2::req_timeout(request, conn$timeout)
  if (!is.null(conn$ca_certificate) && nzchar(conn$ca_certificate)) {
    request <- httr2::req_options(request, cainfo = conn$ca_certificate)
  }
  # Status codes are turned into conditions below, with the hub's message.
  request <- httr2::req_error(request, is_error = function(response) FALSE)
  if (!is.null(token)) {
    request <- httr2::req_auth_bearer_token(request, token)
  }
  if (!is.null(body)) {
    request <- httr2::req_body_json(request, body, auto_unbox = TRUE, null = "null")
  }
  response <- tryCatch(
    httr2::req_perform(request),
    error = function(error) {
      reason <- conditionMessage(error)
      advice <- if (grepl("certificate|SSL", reason, ignore.case = TRUE)) {
        "check that ca_certificate (LINKSIGHT_CA_CERT) names the certificate of the CA that signed the hub's, and that the URL's host is the one in the hub's certificate"
      } else {
        "check the URL and that the hub is running"
      }
      abort(
        sprintf(
          "could not reach the hub at %s (%s %s): %s; %s",
          conn$url, method, path, reason, advice
        ),
        "linksight_connection_error",
        url = conn$url,
        call = call
      )
    }
  )
  status <- httr2::resp_status(response)
  if (status >= 400L) {
    signal_http_error(response, method, path, call)
  }
  parse_json_body(response, method, path, call)
}

parse_json_body <- function(response, method, path, call) {
  text <- httr2::resp_body_string(response, encoding = "UTF-8")
  tryCatch(
    jsonlite::parse_json(text, simplifyVector = FALSE),
    error = function(error) {
      abort(
        sprintf(
          "the hub's reply to %s %s is not valid JSON (%s); is the URL that of a Linksight hub?",
          method, path, conditionMessage(error)
        ),
        "linksight_connection_error",
        call = call
      )
    }
  )
}

# The hub sends every error as {"detail": {"code", "message", ...}}. A reply
# in another shape, such as a proxy's HTML page, keeps its status and text.
signal_http_error <- function(response, method, path, call) {
  status <- httr2::resp_status(response)
  text <- httr2::resp_body_string(response, encoding = "UTF-8")
  parsed <- tryCatch(
    jsonlite::parse_json(text, simplifyVector = FALSE),
    error = function(error) NULL
  )
  detail <- if (is.list(parsed)) parsed$detail else NULL
  if (is.list(detail) && is.character(detail$code) && is.character(detail$message)) {
    code <- detail$code
    message <- detail$message
    if (is.numeric(detail$position) && is.character(detail$query)) {
      message <- paste0(message, "\n", point_at(detail$query, detail$position))
    }
  } else {
    code <- paste0("http_", status)
    message <- sprintf(
      "%s %s returned HTTP %d: %s", method, path, status, substr(text, 1, 500)
    )
  }
  abort(
    message,
    c(paste0("linksight_", code), "linksight_http_error"),
    status = status,
    code = code,
    detail = detail,
    call = call
  )
}

# Show the line of `query` that contains the 0-based character offset
# `position`, with a caret under the offending character.
point_at <- function(query, position) {
  lines <- strsplit(query, "\n", fixed = TRUE)[[1]]
  starts <- cumsum(c(0L, nchar(lines) + 1L))
  line <- max(which(starts[seq_along(lines)] <= position))
  column <- position - starts[line]
  paste0("  ", lines[line], "\n  ", strrep(" ", column), "^")
}

user_agent <- function() {
  paste0("linksight-r/", utils::packageVersion("linksight"))
}

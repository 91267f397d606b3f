# Start a real network for the whole test run: a hub and three stations that
# hold the NCCTG lung data and compute under MPyC, all on 127.0.0.1. The
# Python module linksight.serve_network runs them and writes
# connection.json, with the hub's URL and the tokens of a scientist and of
# each station's data steward, once every station serves its dataset.
#
# LINKSIGHT_PYTHON names the Python interpreter that has Linksight installed;
# the default is python3 on the PATH.

start_network <- function(timeout = 120) {
  python <- Sys.getenv("LINKSIGHT_PYTHON", "python3")
  state_dir <- tempfile("linksight-network-")
  dir.create(state_dir, mode = "0700")
  log_path <- file.path(state_dir, "serve_network.log")
  server <- processx::process$new(
    python,
    # The tests share one network, so the differencing check is off: it
    # would make each query's outcome depend on the queries run before it.
    c("-m", "linksight.serve_network", "--state-dir", state_dir,
      "--differencing-window", "0"),
    stdout = log_path,
    stderr = "2>&1",
    # R's start-up script puts R's and the system's library directories first
    # on LD_LIBRARY_PATH. A Python that finds its own libpython through its
    # RUNPATH, as pyenv's builds do, would then load the system's libpython
    # and fail to import its extension modules, so the child runs without it.
    env = c("current", LD_LIBRARY_PATH = ""),
    cleanup_tree = TRUE,
    supervise = TRUE
  )
  connection_path <- file.path(state_dir, "connection.json")
  deadline <- Sys.time() + timeout
  while (!file.exists(connection_path)) {
    if (!server$is_alive()) {
      stop(sprintf(
        "linksight.serve_network exited with status %s before the network was ready; is Linksight installed for %s (set LINKSIGHT_PYTHON)? Its output:\n%s",
        server$get_exit_status(), python,
        paste(readLines(log_path, warn = FALSE), collapse = "\n")
      ))
    }
    if (Sys.time() > deadline) {
      server$kill_tree()
      stop(sprintf(
        "the network was not ready within %d seconds; logs are in %s",
        timeout, file.path(state_dir, "logs")
      ))
    }
    Sys.sleep(0.2)
  }
  list(
    server = server,
    state_dir = state_dir,
    connection = jsonlite::read_json(connection_path)
  )
}

stop_network <- function(network) {
  # SIGTERM lets serve_network stop the hub and stations in order; it waits
  # up to 10 s for each of them.
  network$server$signal(tools::SIGTERM)
  network$server$wait(timeout = 30000)
  if (network$server$is_alive()) {
    network$server$kill_tree()
  }
  unlink(network$state_dir, recursive = TRUE)
}

test_network <- start_network()
withr::defer(stop_network(test_network), testthat::teardown_env())

hub_url <- test_network$connection$hub_url
collaboration <- test_network$connection$collaboration
scientist <- lks_connect(hub_url, test_network$connection$scientist$token)
stewards <- lapply(test_network$connection$stewards, function(steward) {
  lks_connect(hub_url, steward$token)
})
names(stewards) <- vapply(test_network$connection$stewards, function(s) s$name, "")

# All stations' rows together, to compute the reference value of each query.
pooled <- utils::read.csv(
  test_network$connection$pooled_csv,
  check.names = FALSE
)

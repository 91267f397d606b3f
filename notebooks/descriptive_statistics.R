# Descriptive statistics on the NCCTG lung data, from R.
#
# Three hospitals each hold part of the NCCTG lung-cancer data: 228 patients
# with advanced lung cancer, split by institution. None of them may send its
# records to the others or to us. This script asks:
#
#   Among patients whose physician rated their performance as impaired (ECOG
#   score 1 or more), how many are men and how many women, and how old are
#   they on average?
#
# Each query goes to the governance hub; the data stewards of the three
# hospitals approve it; each station computes its local counts and sums, and
# the stations add them up under secure multiparty computation, so that only
# pooled figures resting on at least 10 patients are revealed.
#
# Run it as a scientist of the lung study, with the R package of clients/r
# installed:
#
#   LINKSIGHT_HUB_URL=http://127.0.0.1:8700 LINKSIGHT_TOKEN=... \
#     Rscript notebooks/descriptive_statistics.R
#
# Each query waits until the steward of every hospital has approved it.

library(linksight)

# Connect ----------------------------------------------------------------
# lks_connect() reads the hub's URL and your token from LINKSIGHT_HUB_URL and
# LINKSIGHT_TOKEN, so the token stays out of the script.
conn <- lks_connect()
conn

# The playground has two collaborations; this script uses the lung study.
study <- "lung-study"

# What data is there? ----------------------------------------------------
# A schema lists the columns, their types and allowed values; no value of
# any record is ever shown.
lks_datasets(conn, collaboration = study)
lks_schema(conn, "lung", collaboration = study)

# The question as a query ------------------------------------------------
# sex is categorical (1 male, 2 female), so we group on it. ph.ecog is the
# physician's ECOG score, from 0 (fully active) to 4 (bedridden).
by_sex <- lks_query(
  conn,
  "SELECT count(*), mean(age), var(age) FROM lung WHERE ph.ecog >= 1 GROUP BY sex",
  purpose = "age of patients with impaired performance, by sex",
  collaboration = study
)
by_sex

# The number of patients behind each figure, and every disclosure check
# with its outcome.
attr(by_sex, "n")
attr(by_sex, "checks")

# Weight loss in the last six months, by sex, for the same patients.
weight_loss <- lks_query(
  conn,
  "SELECT mean(wt.loss) FROM lung WHERE ph.ecog >= 1 GROUP BY sex",
  purpose = "weight loss of patients with impaired performance, by sex",
  collaboration = study
)
weight_loss

# What a blocked query looks like ----------------------------------------
# If any figure would rest on fewer than 10 patients, nothing is revealed.
# The result has no rows, and a warning of class linksight_blocked names the
# rule and the cells that failed. Few patients have ECOG scores 3 or 4, so
# this crosstab is blocked. Here the warning is shown as a message, so that
# the script goes on.
crosstab <- withCallingHandlers(
  lks_query(
    conn,
    "SELECT crosstab(sex, ph.ecog) FROM lung",
    purpose = "performance score by sex",
    collaboration = study
  ),
  linksight_blocked = function(warning) {
    message(conditionMessage(warning))
    invokeRestart("muffleWarning")
  }
)
crosstab

# The checks show which cells failed, and never the small counts themselves.
checks <- attr(crosstab, "checks")
checks[!checks$passed, ]

# Deaths among older patients --------------------------------------------
# progress = FALSE hides the progress messages.
older <- lks_query(
  conn,
  "SELECT count(*) FROM lung WHERE age >= 65 GROUP BY status",
  purpose = "deaths among older patients",
  collaboration = study,
  progress = FALSE
)
older

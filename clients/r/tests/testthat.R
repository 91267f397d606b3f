# Run by R CMD check. The tests start a hub and three stations on
# 127.0.0.1 through Python; see testthat/setup-network.R.
library(testthat)
library(linksight)

test_check("linksight")

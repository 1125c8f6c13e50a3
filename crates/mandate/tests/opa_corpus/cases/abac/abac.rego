package abac

# User attributes
user_attributes := {
    "alice": {"tenure": 20, "title": "owner"},
    "bob": {"tenure": 15, "title": "employee"},
}

# Stock attributes
ticker_attributes := {
    "MSFT": {"exchange": "NASDAQ", "price": 59.20},
    "AMZN": {"exchange": "NASDAQ", "price": 813.64},
}

default allow := false

# employees may buy NASDAQ under $2M, in trading hours
allow if {
    user_attributes[input.user].title == "employee"
    ticker_attributes[input.ticker].exchange == "NASDAQ"
    ticker_attributes[input.ticker].price * input.amount < 2000000
    hour := time.clock(time.parse_rfc3339_ns(input.at))[0]
    hour >= 8
    hour < 17
}

# owners may buy anything
allow if user_attributes[input.user].title == "owner"

-- wrk script: POST a body (form by default, or CT) with an Authorization header, all from
-- the environment.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = os.getenv("CT") or "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("AUTH")

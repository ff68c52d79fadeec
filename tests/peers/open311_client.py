"""Open311 GeoReport v2 peer: reads the gateway with a real third-party client.

The gateway claims that standard Open311 clients work against /open311/v2/
unchanged. This script checks that claim with code nobody here wrote:
`georeport` 0.3.1 (the maintained Python 3 GeoReport client) does every read in
both JSON and XML mode. georeport has no POST, tokens or discovery, so those
calls are made with `requests`, using the exact form-urlencoded wire shape of
the `three` client (Python 2 only, so not usable here). Every JSON document is
also validated against the JSON Schemas in schemas/open311/, which encode the
GeoReport v2 spec (ids as strings, W3C dates with a timezone, status open|closed).

usage:
  open311_client.py BASE post API_KEY SERVICE_CODE LAT LONG DESCRIPTION [EMAIL]
      -> {"token": ..., "service_request_id": ...}
  open311_client.py BASE check SERVICE_REQUEST_ID EXPECTED_STATUS
      -> the request object as served by requests/{id}.json
  open311_client.py BASE errors API_KEY
      -> {"ok": true}

BASE is like http://127.0.0.1:PORT/open311/v2/ (trailing slash optional).
Prints one JSON line on stdout; exits 0 on success. On a failed check it prints
"open311_client: FAIL: ..." on stderr and exits 1.
"""
import datetime as dt
import json
import sys
import time
from pathlib import Path

import jsonschema
import requests
import xmltodict
from georeport import GeoReport

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "open311"
CODES = {"livelihood", "enforcement", "development"}
TIMEOUT = 10


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def validate(name, doc):
    """Validate doc against schemas/open311/{name}.schema.json (draft 2020-12)."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    check(not errors, f"{name}.schema.json rejects the document: "
          + "; ".join(f"at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
          + f"\n  document: {json.dumps(doc, ensure_ascii=False)[:800]}")
    return doc


def as_list(x):
    """xmltodict gives a dict for one element, a list for several, None for none."""
    return [] if x is None else x if isinstance(x, list) else [x]


def get(base, path, status=200, **params):
    """GET base+path, check the status and the Content-Type/prolog for its suffix."""
    r = requests.get(base + path, params=params, timeout=TIMEOUT)
    return expect(r, status, path)


def expect(r, status, what):
    statuses = status if isinstance(status, tuple) else (status,)
    check(r.status_code in statuses,
          f"{r.request.method} {what}: HTTP {r.status_code}, expected {status}; body: {r.text[:500]}")
    ctype = r.headers.get("Content-Type", "")
    if r.url.split("?")[0].endswith(".xml"):
        check(ctype.startswith("text/xml"), f"{what}: Content-Type {ctype!r}, expected text/xml")
        check(r.content.startswith(b"<?xml"), f"{what}: XML body does not start with <?xml: {r.text[:200]!r}")
        return xmltodict.parse(r.content)
    check(ctype.startswith("application/json"), f"{what}: Content-Type {ctype!r}, expected application/json")
    return r.json()


def cmd_post(base, api_key, code, lat, long_, description, email=None):
    # Field order and names as `three` 0.8.0 sends them (see edges.md B2),
    # plus one attribute[CODE] field as the spec allows.
    form = {"description": description, "service_code": code, "long": long_, "lat": lat, "api_key": api_key}
    if email:
        form["email"] = email
    form["attribute[floor]"] = "3"
    r = requests.post(base + "requests.json", data=form, timeout=TIMEOUT)
    answer = validate("post_response", expect(r, (200, 201), "requests.json"))
    check("token" in answer[0], f"POST requests.json: expected a token, got {answer}")
    token = answer[0]["token"]

    deadline = time.monotonic() + 60
    srid = None
    while srid is None:
        found = validate("tokens", get(base, f"tokens/{token}.json"))
        check(all(t["token"] == token for t in found), f"tokens/{token}.json names another token: {found}")
        srid = next((t["service_request_id"] for t in found if "service_request_id" in t), None)
        if srid is None:
            check(time.monotonic() < deadline, f"tokens/{token}.json: no service_request_id within 60 s: {found}")
            time.sleep(0.2)

    xml = get(base, f"tokens/{token}.xml")
    check("service_requests" in xml, f"tokens/{token}.xml: root is not <service_requests>: {xml}")
    items = as_list((xml["service_requests"] or {}).get("request"))
    check(any(i.get("service_request_id") == srid and i.get("token") == token for i in items),
          f"tokens/{token}.xml does not map {token} to {srid}: {xml}")
    return {"token": token, "service_request_id": srid}


def cmd_check(base, srid, expected_status):
    gj = GeoReport(base)  # JSON mode (default output_format='json')
    gx = GeoReport(base, output_format="xml")

    # Services, both formats: exactly the three categories.
    services = validate("services", gj.get_service_list())
    check({s["service_code"] for s in services} == CODES, f"services.json codes: {services}")
    validate("services", get(base, "services.json"))
    get(base, "services.xml")
    xml_codes = {s["service_code"] for s in as_list(gx.get_service_list())}
    check(xml_codes == CODES, f"services.xml codes: {xml_codes}")

    # The request itself, raw and through the client, JSON then XML.
    raw = validate("requests", get(base, f"requests/{srid}.json"))
    check(len(raw) == 1, f"requests/{srid}.json: expected a one-element array, got {len(raw)}")
    req = gj.get_service_request(srid)
    stable = ("service_request_id", "service_code", "requested_datetime")  # updated_datetime may move
    check(all(req.get(k) == raw[0].get(k) for k in stable), f"georeport's requests/{srid}.json differs: {req}")
    check(req["service_request_id"] == srid, f"service_request_id {req['service_request_id']!r} != {srid!r}")
    check(req["status"] == expected_status, f"status {req['status']!r}, expected {expected_status!r}")
    get(base, f"requests/{srid}.xml")
    xreq = as_list(gx.get_service_request(srid))
    check(len(xreq) == 1, f"requests/{srid}.xml: expected one <request>, got {xreq}")
    check(xreq[0].get("service_request_id") == srid and xreq[0].get("status") == expected_status,
          f"requests/{srid}.xml: id/status {xreq[0].get('service_request_id')!r}/{xreq[0].get('status')!r}")
    code = req["service_code"]

    # The service definition of its category.
    definition = validate("service_definition", gj.get_service_definition(code))
    check(definition["service_code"] == code, f"services/{code}.json names {definition['service_code']!r}")
    xdef = gx.get_service_definition(code)
    check(xdef.get("service_code") == code, f"services/{code}.xml: {xdef}")

    # Searches: by id, by status, by code, by a two-hour window around requested_datetime.
    t0 = dt.datetime.fromisoformat(req["requested_datetime"]).astimezone(dt.timezone.utc)
    w3c = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    searches = {
        "service_request_id": dict(service_request_id=srid),
        "status": dict(status=expected_status),
        "service_code": dict(service_code=code),
        "start_date/end_date": dict(start_date=w3c(t0 - dt.timedelta(hours=1)), end_date=w3c(t0 + dt.timedelta(hours=1))),
    }
    for label, params in searches.items():
        found = validate("requests", gj.get_service_requests(**params))
        check(srid in {r["service_request_id"] for r in found}, f"requests.json?{params}: {srid} missing")
        if label == "status":
            check(all(r["status"] == expected_status for r in found),
                  f"requests.json?status={expected_status} returned other statuses: {[r['status'] for r in found]}")
        if label == "service_code":
            check(all(r["service_code"] == code for r in found), f"requests.json?service_code={code}: other codes")
    validate("requests", get(base, "requests.json", service_request_id=srid))

    # Discovery, both formats.
    validate("discovery", get(base, "discovery.json"))
    disc = get(base, "discovery.xml")
    endpoints = ((disc.get("discovery") or {}).get("endpoints") or {}).get("endpoint")
    check(as_list(endpoints), f"discovery.xml has no discovery/endpoints/endpoint: {disc}")
    return req


def expect_error(r, status, what):
    """An error answer: the HTTP status and a spec-shaped error body."""
    body = expect(r, status, what)
    if isinstance(body, dict):  # XML
        errors = as_list(((body.get("errors") or {}).get("error")))
        check(errors and all("code" in e for e in errors), f"{what}: no <errors><error><code>: {body}")
    else:
        validate("errors", body)


def cmd_errors(base, api_key):
    expect_error(requests.get(base + "requests/does-not-exist.json", timeout=TIMEOUT), 404, "requests/does-not-exist.json")
    expect_error(requests.get(base + "requests/does-not-exist.xml", timeout=TIMEOUT), 404, "requests/does-not-exist.xml")
    expect_error(requests.get(base + "services/nope.json", timeout=TIMEOUT), 404, "services/nope.json")
    where = {"lat": "36.06", "long": "120.38"}
    post = lambda form: requests.post(base + "requests.json", data=form, timeout=TIMEOUT)
    expect_error(post({"description": "x", "service_code": "livelihood", **where, "api_key": api_key + "-wrong"}),
                 403, "POST requests.json with a wrong api_key")
    expect_error(post({"description": "x", "service_code": "livelihood", "api_key": api_key}),
                 400, "POST requests.json without a location")
    expect_error(post({"description": "x", "service_code": "no-such-service", **where, "api_key": api_key}),
                 404, "POST requests.json with an unknown service_code")
    expect_error(requests.get(base + "requests.json", params={"start_date": "yesterday"}, timeout=TIMEOUT),
                 400, "requests.json?start_date=yesterday")
    return {"ok": True}


def main(argv):
    usage = __doc__.split("usage:")[1].split("BASE is")[0]
    if len(argv) < 3:
        sys.exit("usage:" + usage)
    base, cmd, args = argv[1], argv[2], argv[3:]
    base = base if base.endswith("/") else base + "/"
    commands = {"post": (cmd_post, 5, 6), "check": (cmd_check, 2, 2), "errors": (cmd_errors, 1, 1)}
    if cmd not in commands or not commands[cmd][1] <= len(args) <= commands[cmd][2]:
        sys.exit("usage:" + usage)
    try:
        result = commands[cmd][0](base, *args)
    except Fail as e:
        sys.exit(f"open311_client: FAIL: {e}")
    except requests.HTTPError as e:  # raised by georeport's raise_for_status()
        r = e.response
        sys.exit(f"open311_client: FAIL: {r.request.method} {r.url}: HTTP {r.status_code}: {r.text[:500]}")
    except (requests.RequestException, ValueError, KeyError, TypeError) as e:
        sys.exit(f"open311_client: FAIL: {type(e).__name__}: {e}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv)

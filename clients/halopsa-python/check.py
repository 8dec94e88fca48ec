"""Drive the HaloPSA simulator with a public HaloPSA client library (PyPI `HaloPSA`), the way
an MSP's own script would: a client-credentials token for the tenant, searches of clients,
sites and users, a ticket created with an array POST, a note (an action) on it, the ticket
read back, its status changed, and the errors the library raises. Exits non-zero on the
first mismatch; prints `OK: N checks passed ...` at the end.

  HALO_SIM_URL=http://127.0.0.1:PORT HALO_TENANT=demo HALO_CLIENT_ID=... HALO_SECRET=... \
      .venv/bin/python check.py

The library addresses only hosted Halo (`https://<tenant>.halopsa.com`, the tenant in the
host name). Its session is given a transport adapter that sends those requests to the
simulator over plain HTTP instead, keeping the tenant's host name in the Host header, and
that refuses any other destination. Nothing else of the library is changed.
"""

import json
import os
import sys
import types
from urllib.parse import urlsplit, urlunsplit

try:
    import requests
    from requests.adapters import BaseAdapter, HTTPAdapter

    import HaloPSA  # noqa: F401 - its __init__ re-exports the class Halo over the module's name
except ImportError as e:
    print(f"NOT INSTALLED: {e}", file=sys.stderr)
    sys.exit(3)


def env(name):
    value = os.environ.get(name)
    if not value:
        print(f"set {name}", file=sys.stderr)
        sys.exit(2)
    return value


SIM = urlsplit(env("HALO_SIM_URL"))
TENANT = env("HALO_TENANT")
CLIENT_ID = env("HALO_CLIENT_ID")
SECRET = env("HALO_SECRET")
TENANT_HOST = f"{TENANT}.halopsa.com"


class ToSimulator(HTTPAdapter):
    """Sends a request meant for the tenant's hosted instance to the simulator."""

    def send(self, request, **kwargs):
        u = urlsplit(request.url)
        request.headers["Host"] = u.netloc
        request.url = urlunsplit((SIM.scheme, SIM.netloc, u.path, u.query, u.fragment))
        return super().send(request, **kwargs)


class Refuse(BaseAdapter):
    """Any other destination: the check never leaves the machine."""

    def send(self, request, **kwargs):
        raise requests.ConnectionError(f"refused to reach {request.url} from the check")

    def close(self):
        pass


class LoopbackSession(requests.Session):
    def __init__(self):
        super().__init__()
        self.mount("http://", Refuse())
        self.mount("https://", Refuse())
        self.mount(f"https://{TENANT_HOST}/", ToSimulator())


# Only the library's module sees the loopback session.
halo_module = sys.modules["HaloPSA.Halo"]
halo_module.requests = types.SimpleNamespace(Session=LoopbackSession)
Halo = halo_module.Halo

checks = 0


def check(cond, what, got=None):
    global checks
    checks += 1
    if not cond:
        shown = "" if got is None else f": {json.dumps(got, default=str)[:2000]}"
        print(f"FAIL: {what}{shown}", file=sys.stderr)
        sys.exit(1)


def raises(call):
    """The exception a call raises, or None."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the library raises bare Exception too
        return e
    return None


# A wrong secret: the token request fails and the library says why.
e = raises(lambda: Halo(TENANT, CLIENT_ID, SECRET + "-wrong"))
check(isinstance(e, ValueError) and "client ID and secret" in str(e), "a wrong secret is refused", repr(e))

# The client-credentials token of the tenant (taken in the constructor).
halo = Halo(TENANT, CLIENT_ID, SECRET)
check(isinstance(halo._mh.token, str) and len(halo._mh.token) > 10, "a token for the tenant", halo._mh.token)
check(halo._mh.url == f"https://{TENANT_HOST}/api", "the library addresses the tenant's host", halo._mh.url)

# Clients: a search (the wrapped list with record_count), then one client.
found = halo.Clients.search(search="acme")
check(isinstance(found, dict) and found.get("record_count", 0) >= 1, "clients like 'acme'", found)
check(all("acme" in c["name"].lower() for c in found["clients"]), "the search filters by name", found["clients"])
acme = next((c for c in found["clients"] if c["name"] == "Acme Ltd"), None)
check(acme is not None, "Acme Ltd is found", found["clients"])
one = halo.Clients.get(acme["id"])
check(one["id"] == acme["id"] and one["name"] == "Acme Ltd", "a client by id", one)
everyone = halo.Clients.get_all()
check(isinstance(everyone, list) and len(everyone) > 50, "get_all answers every active client", len(everyone))
check(all(not c.get("inactive") for c in everyone), "get_all leaves inactive clients out", None)
paged = halo.Clients.search(pageinate=True, page_size=10, page_no=2)
check(len(paged["clients"]) == 10 and paged["record_count"] > 10, "a page of clients", paged.get("record_count"))

# Sites of the client.
sites = halo.Sites.search(client_id=acme["id"])
check(isinstance(sites, dict) and sites["record_count"] >= 1, "sites of the client", sites)
check(all(int(s["client_id"]) == acme["id"] for s in sites["sites"]), "every site is the client's", sites["sites"])
site = next((s for s in sites["sites"] if s["id"] == acme["main_site_id"]), None)
check(site is not None, "the client's main site is among its sites", sites["sites"])
check(halo.Sites.get(site["id"])["name"] == site["name"], "a site by id", site)

# A user found by e-mail address.
users = halo.Users.search(search="bob@acme.test")
check(users["record_count"] >= 1, "a user by e-mail", users)
bob = next((u for u in users["users"] if u["emailaddress"].lower() == "bob@acme.test"), None)
check(bob is not None and bob["client_id"] == acme["id"], "the user is the client's", users["users"])
check(halo.Users.get(bob["id"])["emailaddress"] == bob["emailaddress"], "a user by id", bob)
of_client = halo.Users.search(client_id=acme["id"], count=500)
check(any(u["id"] == bob["id"] for u in of_client["users"]), "the users of the client", of_client)

# Setup: the statuses, to find a closed one by name.
statuses = halo.Status.search()
check(isinstance(statuses, list) and len(statuses) >= 3, "statuses are a bare list", statuses)
closed = next((s for s in statuses if s["name"] == "Closed"), None)
check(closed is not None, "a Closed status", statuses)

# A ticket, created with an array POST (one element answers one object).
created = halo.Tickets.update(
    summary="Client library check",
    details="Created by the HaloPSA client library check.",
    client_id=acme["id"],
    site_id=site["id"],
    user_id=bob["id"],
    supplier_reference="client-check-1",
)
check(isinstance(created, dict) and isinstance(created.get("id"), int) and created["id"] > 0, "create answers the ticket", created)
ticket_id = created["id"]
check(created["client_name"] == "Acme Ltd" and created["status_id"] == 1, "the new ticket is Acme's and New", created)

# A note on the ticket (an action, also an array POST).
action = halo.Actions.update(ticket_id=ticket_id, outcome="Note", note="A note from the client library check.", hiddenfromuser=True)
check(isinstance(action, dict) and action.get("ticket_id") == ticket_id, "the action is the ticket's", action)
actions = halo.Actions.search(ticket_id=ticket_id)
check(actions["record_count"] == 1 and actions["actions"][0]["note"].startswith("A note"), "the actions of the ticket", actions)
one_action = halo.Actions.get(id=action["id"], ticket_id=ticket_id)
check(one_action["id"] == action["id"], "an action by id", one_action)

# The ticket read back, and found by a search.
ticket = halo.Tickets.get(ticket_id)
check(ticket["summary"] == "Client library check" and ticket["user_id"] == bob["id"], "the ticket read back", ticket)
check(ticket["site_id"] == site["id"] and ticket["hasbeenclosed"] is False, "its site, and open", ticket)
mine = halo.Tickets.search(client_id=acme["id"], search_summary="client library check")
check([t["id"] for t in mine["tickets"]] == [ticket_id], "a ticket search by client and summary", mine)

# Its status changed by an update (an array POST with the id).
updated = halo.Tickets.update(id=ticket_id, status_id=closed["id"])
check(updated["id"] == ticket_id and updated["status_id"] == closed["id"], "the update answers the ticket", updated)
again = halo.Tickets.get(ticket_id)
check(again["status_id"] == closed["id"] and again["hasbeenclosed"] is True and again["dateclosed"], "closed by status", again)
open_now = halo.Tickets.search(client_id=acme["id"], open_only=True, count=500)
check(all(t["id"] != ticket_id for t in open_now["tickets"]), "open_only leaves it out", open_now)

# Errors the library surfaces.
e = raises(lambda: halo.Tickets.update(summary="bad", client_id=999999))
check(isinstance(e, ValueError) and str(e).startswith("400 Bad Request") and "999999" in str(e), "a validation failure is a 400 with Halo's message", repr(e))
e = raises(lambda: halo.Tickets.update(id=ticket_id, status_id=4242))
check(isinstance(e, ValueError) and "4242" in str(e), "an unknown status is refused", repr(e))
e = raises(lambda: halo.Tickets.get(987654321))
check(e is not None and str(e).startswith("404"), "a missing ticket is a 404", repr(e))
check(halo.Tickets.get(ticket_id)["status_id"] == closed["id"], "a refused update changed nothing", None)

print(f"OK: {checks} checks passed with the HaloPSA client library (PyPI HaloPSA) against the simulator")

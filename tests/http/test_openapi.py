"""``/openapi.json`` as a client reads it: every route's problems from the one table
(``http/problems.py``), success bodies that are what the server sends, the running app's own
bounds, and the tus / IETF endpoint. (schemathesis holds the server to it in
``test_schemathesis.py``; this file checks the description itself.)"""

from __future__ import annotations

import httpx
import pytest

from pixdrop.http.problems import CREDENTIALED, ROUTE_PROBLEMS, SCOPED, kinds
from pixdrop.http.ratelimit import is_exempt
from pixdrop.http.schemas import (
    BlobOut,
    ChunkOut,
    GrantStatus,
    ImageOut,
    ImagePage,
    IssuedGrantOut,
    IssuedKeyOut,
    KeyList,
    LimitsOut,
    Ready,
    SignedUrlOut,
    UploadOut,
)
from tests.auth.conftest import SIGNING_KEY, bearer, direct_key
from tests.http.helpers import sha256_hex, tiny_image

PROBLEM = "application/problem+json"
#: Each operation of the description and its row of the table.
OPERATIONS = {
    ("post", "/v1/images"): "create_image",
    ("get", "/v1/images"): "list_images",
    ("get", "/v1/images/{image_id}"): "get_image",
    ("delete", "/v1/images/{image_id}"): "delete_image",
    ("get", "/v1/images/{image_id}/original"): "get_original",
    ("head", "/v1/images/{image_id}/original"): "head_original",
    ("get", "/v1/images/{image_id}/{variant}"): "get_variant",
    ("head", "/v1/images/{image_id}/{variant}"): "head_variant",
    ("get", "/v1/blobs/sha256/{digest}"): "get_blob",
    ("head", "/v1/blobs/sha256/{digest}"): "head_blob",
    ("post", "/v1/uploads"): "create_upload",
    ("get", "/v1/uploads/{upload_id}"): "get_upload",
    ("put", "/v1/uploads/{upload_id}/chunks/{index}"): "put_chunk",
    ("post", "/v1/uploads/{upload_id}/complete"): "complete_upload",
    ("delete", "/v1/uploads/{upload_id}"): "delete_upload",
    ("get", "/v1/limits"): "get_limits",
    ("get", "/healthz"): "healthz",
    ("get", "/readyz"): "readyz",
    ("post", "/v1/direct-uploads"): "create_grant",
    ("get", "/v1/direct-uploads/{grant_id}"): "get_grant",
    ("post", "/v1/direct-uploads/{token}/image"): "upload_with_grant",
    ("options", "/files/"): "resumable_options",
    ("post", "/files/"): "resumable_create",
    ("options", "/files/{upload_id}"): "resumable_options",
    ("head", "/files/{upload_id}"): "resumable_head",
    ("patch", "/files/{upload_id}"): "resumable_patch",
    ("delete", "/files/{upload_id}"): "resumable_delete",
    ("get", "/v1/images/{image_id}/signed-url"): "signed_url",
    ("post", "/v1/keys"): "create_key",
    ("get", "/v1/keys"): "list_keys",
    ("delete", "/v1/keys/{key_id}"): "revoke_key",
    ("post", "/v1/webhooks"): "create_webhook",
    ("get", "/v1/webhooks"): "list_webhooks",
    ("delete", "/v1/webhooks/{webhook_id}"): "remove_webhook",
    ("get", "/v1/webhooks/deliveries"): "list_deliveries",
    ("post", "/v1/webhooks/deliveries/{delivery_id}/resend"): "resend_delivery",
}


def types_of(op: dict, status: int) -> list[str]:
    """The problem types *op* says it answers with *status*."""
    response = op["responses"].get(str(status))
    if response is None:
        return []
    return response["content"][PROBLEM]["schema"]["allOf"][1]["properties"]["type"]["enum"]


def described(live) -> dict:
    response = httpx.get(f"{live.url}/openapi.json", timeout=30)
    assert response.status_code == 200
    return response.json()


def operations(doc: dict) -> dict[tuple[str, str], dict]:
    return {
        (method, path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    }


@pytest.mark.parametrize("backend", ["sqlite"])
def test_every_operation_answers_the_problems_of_its_row(server_factory) -> None:
    doc = described(server_factory())
    found = operations(doc)
    assert set(found) == set(OPERATIONS)
    assert set(OPERATIONS.values()) == set(ROUTE_PROBLEMS)  # no row describes nothing
    for key, op in found.items():
        route = OPERATIONS[key]
        # The operation's id names its row (the OPTIONS of an upload shares the mount's row).
        assert op["operationId"] in (route, "resumable_options_upload"), key
        errors = {int(s): r for s, r in op["responses"].items() if int(s) >= 400}
        assert set(errors) == {k.status for k in kinds(route)}, key
        assert 500 in errors, key
        for status, response in errors.items():
            # /readyz's 503 is also its own body (not ready), beside the connection layer's.
            own = {"application/json"} if key == ("get", "/readyz") and status == 503 else set()
            assert set(response["content"]) == {PROBLEM} | own, (key, status)
            ref, narrowed = response["content"][PROBLEM]["schema"]["allOf"]
            assert ref == {"$ref": "#/components/schemas/Problem"}
            wanted = [k.uri for k in kinds(route) if k.status == status]
            assert narrowed["properties"]["type"]["enum"] == wanted, (key, status)
    # A bad parameter is a 400 problem, never FastAPI's own 422 body.
    assert "HTTPValidationError" not in str(doc)
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_problems_of_a_status_name_their_types(server_factory) -> None:
    doc = described(server_factory())
    put = doc["paths"]["/v1/uploads/{upload_id}/chunks/{index}"]["put"]["responses"]
    conflict = put["409"]["content"][PROBLEM]["schema"]["allOf"][1]["properties"]["type"]
    assert conflict["enum"] == [
        "/problems/chunk-busy",
        "/problems/chunk-conflict",
        "/problems/upload-not-receiving",
    ]
    gone = put["404"]["content"][PROBLEM]["schema"]["allOf"][1]["properties"]["type"]
    assert gone["enum"] == ["/problems/chunk-not-found", "/problems/upload-not-found"]
    assert "500" in doc["paths"]["/healthz"]["get"]["responses"]
    # What the connection layer answers before any route runs: on every route.
    for path, method in [("/healthz", "get"), ("/v1/uploads/{upload_id}/chunks/{index}", "put")]:
        op = doc["paths"][path][method]
        assert types_of(op, 408) == ["/problems/request-timeout"], path
        assert types_of(op, 431) == ["/problems/header-too-large"], path
        assert types_of(op, 503) == ["/problems/service-unavailable"], path
    # Routes that write: a full disk.
    for path, method in [("/v1/direct-uploads/{token}/image", "post"), ("/v1/images", "post")]:
        assert types_of(doc["paths"][path][method], 507) == ["/problems/insufficient-storage"]
    assert "507" not in doc["paths"]["/v1/direct-uploads/{grant_id}"]["get"]["responses"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_grant_s_problems_are_on_every_way_in(server_factory) -> None:
    doc = described(server_factory())
    upload_url = doc["paths"]["/v1/direct-uploads/{token}/image"]["post"]
    assert types_of(upload_url, 404) == ["/problems/grant-not-found"]
    # The grant's issuer's quota holds for what the grant uploads.
    assert types_of(upload_url, 403) == ["/problems/grant-expired", "/problems/quota-exceeded"]
    assert "/problems/grant-used" in types_of(upload_url, 409)
    assert "/problems/grant-too-large" in types_of(upload_url, 413)
    assert "/problems/trailing-data" in types_of(upload_url, 422)
    assert "/problems/grant-format-refused" in types_of(upload_url, 422)
    assert types_of(doc["paths"]["/v1/direct-uploads/{grant_id}"]["get"], 404) == [
        "/problems/grant-not-found"
    ]
    # A bearer token: 401 if it is no grant's, then the grant's own refusals.
    ways_in = [("/v1/images", "post"), ("/v1/uploads", "post"), ("/files/", "post")]
    for path, method in ways_in:
        op = doc["paths"][path][method]
        assert types_of(op, 401) == ["/problems/unauthorized"], path
        assert "/problems/grant-expired" in types_of(op, 403), path
        assert "/problems/grant-used" in types_of(op, 409), path
        assert "/problems/grant-too-large" in types_of(op, 413), path
    # The format is known once the image is complete.
    for path, method in [
        ("/v1/images", "post"),
        ("/v1/uploads/{upload_id}/complete", "post"),
        ("/files/{upload_id}", "patch"),
    ]:
        assert "/problems/grant-format-refused" in types_of(doc["paths"][path][method], 422)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_rate_limited_app_describes_429_where_it_counts(server_factory) -> None:
    limited = described(server_factory(rate_limit="1000/second"))
    plain = described(server_factory())
    for (method, path), op in operations(limited).items():
        counted = not is_exempt(path)
        assert ("/problems/rate-limited" in types_of(op, 429)) == counted, (method, path)
    for key, op in operations(plain).items():
        assert "429" not in op["responses"], key


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_cap_on_open_uploads_is_described_where_uploads_open(server_factory) -> None:
    capped = described(server_factory(max_open_uploads_per_client=3))
    for path in ("/v1/uploads", "/files/"):
        assert types_of(capped["paths"][path]["post"], 429) == ["/problems/too-many-open-uploads"]
    # A one-request upload is never open.
    assert "429" not in capped["paths"]["/v1/images"]["post"]["responses"]


def test_bounds_are_the_running_apps(server_factory) -> None:
    live = server_factory(
        max_image_size="10MiB",
        max_chunk_size="32MiB",
        min_chunk_size=4096,
        default_chunk_size=8192,
        variant_sizes="100,200",
        variant_presets="tiny=50,big=400",
    )
    doc = described(live)
    limits = httpx.get(f"{live.url}/v1/limits").json()
    create = doc["paths"]["/v1/uploads"]["post"]["requestBody"]["content"]["application/json"]
    fields = create["schema"]["properties"]
    assert fields["size"]["maximum"] == 10 * 2**20
    chunk = fields["chunk_size"]["anyOf"][0]
    # On S3 the smallest chunk is the store's 5 MiB part minimum, as /v1/limits says.
    assert chunk["minimum"] == limits["min_chunk_size"]
    assert chunk["maximum"] == 32 * 2**20
    variant = doc["paths"]["/v1/images/{image_id}/{variant}"]["get"]["parameters"]
    schemas = {p["name"]: p["schema"] for p in variant}
    assert schemas["variant"]["enum"] == ["big", "tiny"]
    assert schemas["w"]["anyOf"][0]["enum"] == [100, 200]
    assert schemas["format"]["anyOf"][0]["enum"] == limits["variant_formats"]
    options = doc["paths"]["/files/"]["options"]["responses"]["204"]["headers"]
    assert options["Tus-Max-Size"]["schema"]["enum"] == [str(10 * 2**20)]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_two_apps_describe_their_own_settings(server_factory) -> None:
    small = described(server_factory(max_image_size="1MiB", tus_path="/tus"))
    large = described(server_factory(max_image_size="2MiB"))
    assert (
        small["paths"]["/v1/uploads"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["properties"]["size"]["maximum"]
        == 2**20
    )
    assert (
        large["paths"]["/v1/uploads"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["properties"]["size"]["maximum"]
        == 2 * 2**20
    )
    assert "/tus/{upload_id}" in small["paths"]
    assert "/files/{upload_id}" not in small["paths"]
    assert "/files/{upload_id}" in large["paths"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_resumable_endpoint_is_described(server_factory) -> None:
    doc = described(server_factory())
    mount, item = doc["paths"]["/files/"], doc["paths"]["/files/{upload_id}"]
    assert set(mount) == {"options", "post"}
    assert set(item) == {"options", "head", "patch", "delete"}
    patch = {p["name"]: p for p in item["patch"]["parameters"]}
    assert patch["Upload-Offset"]["required"] is True
    assert patch["Tus-Resumable"]["required"] is True
    assert patch["Upload-Draft-Interop-Version"]["schema"]["enum"] == [3, 4, 5, 6, 7, 8]
    assert "application/offset+octet-stream" in item["patch"]["requestBody"]["content"]
    # tus answers HEAD with 200, the IETF draft with 204; OPTIONS needs no Tus-Resumable.
    assert {"200", "204"} <= set(item["head"]["responses"])
    assert "Tus-Resumable" not in {p["name"] for p in mount["options"]["parameters"]}
    created = mount["post"]["responses"]["201"]["headers"]
    assert {"Location", "Upload-Offset", "Pixdrop-Image"} <= set(created)


def keys_of(doc: dict, model: str) -> set[str]:
    return set(doc["components"]["schemas"][model]["properties"])


def test_success_bodies_are_what_the_description_says(server_factory) -> None:
    live = server_factory(min_chunk_size=1024, default_chunk_size=1024)
    doc = described(live)
    image = tiny_image()
    with httpx.Client(base_url=live.url, timeout=30) as client:
        stored = client.post("/v1/images", content=image).json()
        assert set(stored) == keys_of(doc, "ImageOut")  # with its delete token
        ImageOut.model_validate(stored)
        shown = client.get(f"/v1/images/{stored['id']}").json()
        assert set(shown) == keys_of(doc, "ImageOut") - {"delete_token"}
        page = client.get("/v1/images").json()
        assert set(page) == keys_of(doc, "ImagePage")
        ImagePage.model_validate(page)
        blob = client.get(f"/v1/blobs/sha256/{sha256_hex(image)}").json()
        assert set(blob) == keys_of(doc, "BlobOut")
        BlobOut.model_validate(blob)
        upload = client.post("/v1/uploads", json={"size": len(image)}).json()
        assert set(upload) == keys_of(doc, "UploadOut")
        UploadOut.model_validate(upload)
        chunk = client.put(f"/v1/uploads/{upload['id']}/chunks/0", content=image).json()
        assert set(chunk) == keys_of(doc, "ChunkOut")
        ChunkOut.model_validate(chunk)
        limits = client.get("/v1/limits").json()
        assert set(limits) == keys_of(doc, "LimitsOut")
        LimitsOut.model_validate(limits)
        assert set(client.get("/healthz").json()) == keys_of(doc, "Health")
        ready = client.get("/readyz").json()
        assert set(ready) == keys_of(doc, "Ready")
        Ready.model_validate(ready)
        grant = client.post("/v1/direct-uploads", json={"metadata": {"user": 42}}).json()
        assert set(grant) == keys_of(doc, "IssuedGrantOut")
        IssuedGrantOut.model_validate(grant)
        made = client.post(grant["upload_url"], files={"file": ("a.png", tiny_image(seed=2))})
        assert made.status_code == 201, made.text
        assert set(made.json()) == keys_of(doc, "ImageOut")
        status = client.get(grant["status_url"]).json()
        assert set(status) == keys_of(doc, "GrantStatus")
        assert status["image"] is not None
        assert set(status["image"]) < keys_of(doc, "ImageOut")
        GrantStatus.model_validate(status)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_description_is_built_once(server_factory) -> None:
    live = server_factory()
    described(live)
    app = live.server.config.app
    assert app.openapi() is app.openapi()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_whole_number_written_with_a_point_is_the_integer_the_schema_says(
    server_factory,
) -> None:
    # JSON Schema's "integer" is any number with no fraction: 67.0 fits the description of
    # size, so the server takes it (schemathesis found it refused); 67.5 and "67" do not fit.
    live = server_factory(min_chunk_size=1024)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        created = client.post("/v1/uploads", json={"size": 67.0, "chunk_size": 1024.0})
        assert created.status_code == 201, created.text
        assert (created.json()["size"], created.json()["chunk_size"]) == (67, 1024)
        for refused in ({"size": 67.5}, {"size": "67"}, {"size": True}):
            response = client.post("/v1/uploads", json=refused)
            assert response.status_code == 400, refused
        # The same for a grant's numbers.
        grant = client.post("/v1/direct-uploads", json={"max_size": 100.0, "expires_in": 600.0})
        assert grant.status_code == 201, grant.text
        assert grant.json()["max_size"] == 100
        for refused in ({"max_size": 100.5}, {"expires_in": "600"}, {"expires_in": True}):
            response = client.post("/v1/direct-uploads", json=refused)
            assert response.status_code == 400, refused


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_pre_create_hook_adds_its_problems_to_the_routes_that_create(server_factory) -> None:
    # Only the description is read: the hook is never asked.
    hooked = described(server_factory(hook_url="http://127.0.0.1:9/hook"))
    plain = described(server_factory())
    creating = [
        ("/v1/images", "post"),
        ("/v1/uploads", "post"),
        ("/files/", "post"),
        ("/v1/direct-uploads/{token}/image", "post"),
    ]
    for path, method in creating:
        responses = hooked["paths"][path][method]
        assert "/problems/hook-refused" in types_of(responses, 403), path
        assert "/problems/hook-unavailable" in types_of(responses, 503), path
        assert "/problems/hook-unavailable" not in types_of(plain["paths"][path][method], 503)
    # A route that creates nothing is not the hook's.
    get_upload = hooked["paths"]["/v1/uploads/{upload_id}"]["get"]
    assert types_of(get_upload, 503) == ["/problems/service-unavailable"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_mode_describes_its_401_403_and_the_bearer_scheme(server_factory) -> None:
    keyed = described(server_factory(auth="keys"))
    open_ = described(server_factory(auth="none"))
    for doc in (keyed, open_):
        scheme = doc["components"]["securitySchemes"]["apiKey"]
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "--auth keys" in keyed["info"]["description"]
    assert "--auth none`: no operation needs a credential" in open_["info"]["description"]
    for key, op in operations(keyed).items():
        route = OPERATIONS[key]
        needs = route in CREDENTIALED and op["operationId"] != "resumable_options_upload"
        assert ("security" in op) == needs, key
        if needs:
            assert op["security"] == [{"apiKey": []}], key
        # Any route: a pxk_ / pxg_ bearer that does not resolve, in either mode.
        for doc in (keyed, open_):
            response = operations(doc)[key]["responses"]["401"]
            assert types_of(operations(doc)[key], 401) == ["/problems/unauthorized"], key
            assert response["headers"]["WWW-Authenticate"]["required"] is True, key
        # A key without the scope: only where a scope is needed, only in keys mode.
        forbidden = "/problems/forbidden"
        plain = forbidden in types_of(operations(open_)[key], 403)
        assert (forbidden in types_of(op, 403)) == (plain or route in SCOPED), key
    for op in operations(open_).values():
        assert "security" not in op
    assert "/problems/forbidden" not in types_of(open_["paths"]["/v1/images"]["get"], 403)
    assert "/problems/forbidden" in types_of(keyed["paths"]["/v1/keys"]["get"], 403)
    # OPTIONS (tus discovery) needs nothing, even in keys mode.
    assert "security" not in keyed["paths"]["/files/"]["options"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_quota_and_private_images_are_described_in_both_modes(server_factory) -> None:
    doc = described(server_factory())
    creating = [
        ("/v1/images", "post"),
        ("/v1/uploads", "post"),
        ("/v1/uploads/{upload_id}/complete", "post"),
        ("/files/", "post"),
        ("/files/{upload_id}", "patch"),
        ("/v1/direct-uploads/{token}/image", "post"),
    ]
    for path, method in creating:
        assert "/problems/quota-exceeded" in types_of(doc["paths"][path][method], 403), path
    assert "403" not in doc["paths"]["/v1/uploads/{upload_id}"]["get"]["responses"]
    reads = [
        ("/v1/images/{image_id}", "get"),
        ("/v1/images/{image_id}/original", "get"),
        ("/v1/images/{image_id}/original", "head"),
        ("/v1/images/{image_id}/{variant}", "get"),
    ]
    for path, method in reads:
        op = doc["paths"][path][method]
        assert types_of(op, 403) == ["/problems/forbidden"], path
        assert types_of(op, 401) == ["/problems/unauthorized"], path
    delete = doc["paths"]["/v1/images/{image_id}"]["delete"]
    assert types_of(delete, 403) == ["/problems/forbidden"]  # a wrong delete token


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_and_signed_url_bodies_are_what_the_description_says(server_factory) -> None:
    live = server_factory(auth="keys", signing_key=SIGNING_KEY)
    doc = described(live)
    admin = direct_key(live.settings.resolved_database_url, scopes=["admin"])
    body = doc["paths"]["/v1/keys"]["post"]["requestBody"]["content"]["application/json"]
    fields = body["schema"]["properties"]
    assert fields["scopes"]["items"]["enum"] == ["upload", "read", "delete", "admin"]
    with httpx.Client(base_url=live.url, headers=bearer(admin), timeout=30) as client:
        spec = {"name": "n", "scopes": ["read"], "quota": "1MiB", "rate": "5/Minute"}
        issued = client.post("/v1/keys", json={**spec, "expires": "2w"})
        assert issued.status_code == 201, issued.text
        assert set(issued.json()) == keys_of(doc, "IssuedKeyOut")
        IssuedKeyOut.model_validate(issued.json())
        listed = client.get("/v1/keys").json()
        assert set(listed) == keys_of(doc, "KeyList")
        assert set(listed["keys"][0]) == keys_of(doc, "KeyOut")
        KeyList.model_validate(listed)
        image = client.post("/v1/images", content=tiny_image(), params={"private": "true"})
        assert image.status_code == 201, image.text
        signed = client.get(f"/v1/images/{image.json()['id']}/signed-url").json()
        assert set(signed) == keys_of(doc, "SignedUrlOut")
        SignedUrlOut.model_validate(signed)

"""The provider's own Python SDK (dashscope) against the API simulator.

Runs the Python examples of the provider's API page (shared/reference/
multimodal-embedding-api.txt, "Code examples") through
dashscope.MultiModalEmbedding.call, with the SDK's base URL pointed at the
simulator, plus the failures a caller must see as the real service gives them
(a wrong key, refused inputs, a 429). Prints one JSON document on stdout: what
the SDK handed its caller for each case. test/integration/sdk.test.ts runs it
and asserts on it, and on the requests the simulator captured.

Environment (set by the test):
  DASHSCOPE_BASE_URL   the simulator, e.g. http://127.0.0.1:40123 (no /api/v1)
  DASHSCOPE_API_KEY    the key the simulator accepts (the SDK reads it itself)
  SDK_WRONG_KEY        another key
  SDK_IMAGE_URL        an image URL the simulator can download
  SDK_VIDEO_URL        an MP4 URL the simulator can download
  SDK_LOCAL_IMAGE      a local PNG file (sent as a base64 data URI)
  SDK_MISSING_URL      an image URL that answers 404
  SDK_THROTTLED_MODEL  a model whose quota the test set to 1 request a minute

Run by hand: test/python/.venv/bin/python test/python/sdk_examples.py
"""

import base64
import json
import os
import sys
from http import HTTPStatus

import dashscope

# The SDK builds {base_http_api_url}/services/embeddings/multimodal-embedding/
# multimodal-embedding; its base must end in /api/v1.
dashscope.base_http_api_url = os.environ["DASHSCOPE_BASE_URL"].rstrip("/") + "/api/v1"

IMAGE_URL = os.environ["SDK_IMAGE_URL"]
VIDEO_URL = os.environ["SDK_VIDEO_URL"]
LOCAL_IMAGE = os.environ["SDK_LOCAL_IMAGE"]
MISSING_URL = os.environ["SDK_MISSING_URL"]
WRONG_KEY = os.environ["SDK_WRONG_KEY"]
THROTTLED_MODEL = os.environ["SDK_THROTTLED_MODEL"]

# The texts of the page's examples.
TEXT = "General multimodal representation model example"
FUSED_TEXT = "This is a test text for generating a multimodal fused embedding."


def summary(resp):
    """What the SDK handed its caller, each vector reduced to its length, whether
    every component is a number, and its first components."""
    output = resp.output
    if isinstance(output, dict) and isinstance(output.get("embeddings"), list):
        output = {
            "embeddings": [
                {
                    "index": e.get("index"),
                    "type": e.get("type"),
                    "length": len(e.get("embedding") or []),
                    "numbers": all(
                        isinstance(x, (int, float)) and not isinstance(x, bool)
                        for x in e.get("embedding") or []
                    ),
                    "head": (e.get("embedding") or [])[:4],
                }
                for e in output["embeddings"]
            ],
        }
    return {
        "python_type": type(resp).__name__,
        "status_code": resp.status_code,
        "request_id": getattr(resp, "request_id", ""),
        "code": getattr(resp, "code", ""),
        "message": getattr(resp, "message", ""),
        "output": output,
        "usage": resp.usage,
    }


# ---- the page's examples, as written there (models included) ----


def image_url():
    # "Use an image URL"
    input = [{"image": IMAGE_URL}]
    return dashscope.MultiModalEmbedding.call(
        model="tongyi-embedding-vision-plus",
        input=input,
    )


def local_image_base64():
    # "Use a local image": read the file, base64 it, send a data URI.
    with open(LOCAL_IMAGE, "rb") as image_file:
        base64_image = base64.b64encode(image_file.read()).decode("utf-8")
    image_format = "png"
    image_data = f"data:image/{image_format};base64,{base64_image}"
    input = [{"image": image_data}]
    return dashscope.MultiModalEmbedding.call(
        model="tongyi-embedding-vision-plus",
        input=input,
    )


def video_url():
    # "Generate video embeddings": URL only.
    input = [{"video": VIDEO_URL}]
    return dashscope.MultiModalEmbedding.call(
        model="tongyi-embedding-vision-plus",
        input=input,
    )


def text():
    # "Generate text embeddings"
    input = [{"text": TEXT}]
    return dashscope.MultiModalEmbedding.call(
        model="tongyi-embedding-vision-plus",
        input=input,
    )


def fused():
    # "Generate fused embeddings", with the optional dimension it mentions and a
    # frame rate. The SDK takes them as keyword arguments ("For SDK calls, you can
    # use these parameters directly") and puts them in the body's parameters.
    input_data = [{"text": FUSED_TEXT, "image": IMAGE_URL, "video": VIDEO_URL}]
    return dashscope.MultiModalEmbedding.call(
        api_key=os.getenv("DASHSCOPE_API_KEY"),
        model="qwen3-vl-embedding",
        input=input_data,
        dimension=1024,
        fps=0.5,
    )


def fused_parameters_kwarg():
    # The same example with the line its comment suggests uncommented,
    # parameters={"dimension": 1024}. The SDK passes unknown keyword arguments
    # through into the body's parameters, so this sends
    # parameters: {"parameters": {"dimension": 1024}}: not a dimension at all.
    input_data = [{"text": FUSED_TEXT, "image": IMAGE_URL, "video": VIDEO_URL}]
    return dashscope.MultiModalEmbedding.call(
        api_key=os.getenv("DASHSCOPE_API_KEY"),
        model="qwen3-vl-embedding",
        input=input_data,
        parameters={"dimension": 1024},
    )


# ---- beyond the page: the other documented element form, and failures ----


def text_bare_string():
    # "You can also pass the string directly without a dictionary": the SDK sends
    # string elements as they are (the form the project's client uses for texts).
    return dashscope.MultiModalEmbedding.call(
        model="tongyi-embedding-vision-plus",
        input=[TEXT],
    )


def wrong_key():
    return dashscope.MultiModalEmbedding.call(
        api_key=WRONG_KEY,
        model="tongyi-embedding-vision-plus",
        input=[{"text": TEXT}],
    )


def refused_dimension():
    # 1000 is not one of qwen3-vl-embedding's dimensions.
    return dashscope.MultiModalEmbedding.call(
        model="qwen3-vl-embedding",
        input=[{"text": TEXT}],
        dimension=1000,
    )


def refused_download():
    # The service downloads URLs itself; one that answers 404 cannot be embedded.
    return dashscope.MultiModalEmbedding.call(
        model="tongyi-embedding-vision-plus",
        input=[{"image": MISSING_URL}],
    )


def quota_first():
    return dashscope.MultiModalEmbedding.call(
        model=THROTTLED_MODEL,
        input=[{"text": TEXT}],
    )


def quota_second():
    # Over the model's requests-per-minute: the SDK returns, it does not raise.
    return dashscope.MultiModalEmbedding.call(
        model=THROTTLED_MODEL,
        input=[{"text": TEXT}],
    )


def local_file_path():
    # Not on the page: given a local path instead of a URL, the SDK uploads the file
    # to the provider's temporary storage first (GET {base}/uploads?action=getPolicy,
    # then a POST to OSS) and sends an oss:// URL with X-DashScope-OssResourceResolve.
    # The simulator has no upload service, so the SDK raises before any embedding call.
    return dashscope.MultiModalEmbedding.call(
        model="tongyi-embedding-vision-plus",
        input=[{"image": LOCAL_IMAGE}],
    )


CASES = [
    text,
    image_url,
    local_image_base64,
    video_url,
    fused,
    fused_parameters_kwarg,
    text_bare_string,
    local_file_path,
    wrong_key,
    refused_dimension,
    refused_download,
    quota_first,
    quota_second,
]


def main():
    results = {}
    for case in CASES:
        try:
            resp = case()
            results[case.__name__] = summary(resp)
            results[case.__name__]["ok"] = resp.status_code == HTTPStatus.OK
        except Exception as err:  # pylint: disable=broad-except
            # A raise is an outcome too (the test says which case and why).
            results[case.__name__] = {"raised": f"{type(err).__name__}: {err}"}
    json.dump(
        {"dashscope_version": dashscope.__version__, "cases": results},
        sys.stdout,
        ensure_ascii=False,
        indent=2,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

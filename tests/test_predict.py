"""Predictions from a pushed model: locally, and over TF Serving's gRPC and REST shapes.

No TF Serving binary exists here. The remote tests run a loopback server that
answers TF Serving's PredictionService (real tensorflow-serving-api protos over real
gRPC) and its REST row format by calling the pushed SavedModel's signature, so the
client code, the request shapes and the model are all exercised for real.
"""

import base64
import concurrent.futures
import http.server
import io
import json
import threading

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import prediction_service_pb2_grpc

from components.common import model_io
from components.common.preprocessing import ImageSpec
from components.serving_check.tf_serving_probe import SessionModel
from pipeline import predict

CLASSES = ["cat", "dog", "eel"]
SPEC = ImageSpec(height=8, width=8, scaling="unit")


@pytest.fixture(scope="module")
def serving_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    classifier = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    for version in ("1700000000", "1700000100"):  # the newest must be picked
        model_io.export_serving_model(classifier, SPEC, CLASSES, str(root / "m" / version))
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, colour in enumerate([(255, 0, 0), (0, 90, 200)]):
        path = folder / f"img{i}.png"
        Image.new("RGB", (5 + i, 7), colour).save(path)
        paths.append(str(path))
    return paths


def _direct(model_dir, paths):
    loaded = tf.saved_model.load(model_dir)
    data = [open(p, "rb").read() for p in paths]
    return loaded.signatures["predict_images"](images=tf.constant(data))["probabilities"].numpy()


def test_latest_version_and_local_top_k(serving_root, images):
    model_dir = predict.latest_version_dir(str(serving_root), "m")
    assert model_dir.endswith("1700000100")
    results = predict.predict_local(model_dir, images, k=2)
    expected = _direct(model_dir, images)
    for result, probs in zip(results, expected, strict=True):
        assert [name for name, _ in result.top] == [CLASSES[i] for i in np.argsort(-probs)[:2]]
        assert result.top[0][1] == pytest.approx(float(probs.max()), abs=1e-6)
    assert "img0.png: " in results[0].format()
    with pytest.raises(FileNotFoundError, match="no pushed version of model 'other'"):
        predict.latest_version_dir(str(serving_root), "other")


def test_local_bad_bytes_is_an_invalid_argument_error(serving_root, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(tf.errors.InvalidArgumentError):
        predict.predict_local(predict.latest_version_dir(str(serving_root), "m"), [str(bad)])


class _Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers Predict like TF Serving: the model loaded the way TF Serving loads it
    (TF1 session, signature_def names), the model by name, tensors as TensorProtos."""

    def __init__(self, model_name, model_dir):
        self._name = model_name
        self._model = SessionModel(model_dir)

    def Predict(self, request, context):  # noqa: N802 - gRPC's name
        if request.model_spec.name != self._name:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}"
            )
        try:
            return self._model.predict(request)
        except tf.errors.InvalidArgumentError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)


def test_grpc_predict_request_shape(serving_root, images):
    model_dir = predict.latest_version_dir(str(serving_root), "m")
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _Servicer("m", model_dir), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        results = predict.predict_grpc(f"127.0.0.1:{port}", "m", images, k=3)
        # The server checks the model name; the client names the server's answer.
        with pytest.raises(predict.ServerError, match="answered NOT_FOUND: Servable not found"):
            predict.predict_grpc(f"127.0.0.1:{port}", "other", images)
    finally:
        server.stop(None)
    expected = _direct(model_dir, images)
    assert [r.top[0][0] for r in results] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert sorted(name for name, _ in results[0].top) == sorted(CLASSES)


def _rest_handler(model_dir):
    model = SessionModel(model_dir)  # TF Serving's loader path

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.path == "/v1/models/m:predict"
            data = [base64.b64decode(row["b64"]) for row in body["instances"]]
            try:
                out = model.run(body["signature_name"], {"images": np.array(data, dtype=object)})
                rows = [
                    {
                        k: (v[i].tolist() if v.ndim > 1 else v[i].item())
                        for k, v in (
                            (k, np.char.decode(t.astype(bytes)) if t.dtype == object else t)
                            for k, t in out.items()
                        )
                    }
                    for i in range(len(data))
                ]
                status, payload = 200, {"predictions": rows}
            except tf.errors.InvalidArgumentError as e:
                status, payload = 400, {"error": e.message}
            encoded = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, *args):
            pass

    return Handler


def test_rest_b64_row_format_and_errors(serving_root, images, tmp_path):
    model_dir = predict.latest_version_dir(str(serving_root), "m")
    server = http.server.HTTPServer(("127.0.0.1", 0), _rest_handler(model_dir))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        results = predict.predict_rest(url, "m", images, k=1)
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"nope")
        with pytest.raises(RuntimeError, match="answered 400"):
            predict.predict_rest(url, "m", [str(bad)])
    finally:
        server.shutdown()
    expected = _direct(model_dir, images)
    assert [r.top[0][0] for r in results] == [CLASSES[i] for i in expected.argmax(axis=1)]
    body = predict.rest_request_body([b"\x89PNG"])
    assert body == {"signature_name": "predict_images", "instances": [{"b64": "iVBORw=="}]}
    assert io.BytesIO(base64.b64decode(body["instances"][0]["b64"])).read() == b"\x89PNG"

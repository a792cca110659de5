"""Prediction network (embedding + LSTM) and joint network, with NeMo's parameter names."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .config import TransducerConfig


class LSTMLayer(nn.Module):
    """One LSTM layer, stepped one token at a time. Parameters as `mlx.nn.LSTM` names them:
    `Wx` (4H, in), `Wh` (4H, H), `bias` (4H, torch's bias_ih + bias_hh); gates i, f, g, o."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        scale = hidden_size**-0.5
        self.Wx = mx.random.uniform(-scale, scale, (4 * hidden_size, input_size))
        self.Wh = mx.random.uniform(-scale, scale, (4 * hidden_size, hidden_size))
        self.bias = mx.random.uniform(-scale, scale, (4 * hidden_size,))

    def __call__(self, x: mx.array, h: mx.array, c: mx.array) -> tuple[mx.array, mx.array]:
        return self.cell(self.input_gates(x), h, c)

    def input_gates(self, x: mx.array) -> mx.array:
        """The gates' input part, bias + x Wx^T (B, 4H)."""
        return mx.addmm(self.bias, x, self.Wx.T)

    def cell(self, gates_x: mx.array, h: mx.array, c: mx.array) -> tuple[mx.array, mx.array]:
        """The step from the gates' input part: new (h, c)."""
        gates = mx.addmm(gates_x, h, self.Wh.T)  # one kernel
        i, f, g, o = mx.split(gates, 4, axis=-1)
        c = mx.sigmoid(f) * c + mx.sigmoid(i) * mx.tanh(g)
        return mx.sigmoid(o) * mx.tanh(c), c


class _LSTMStack(nn.Module):
    def __init__(self, size: int, layers: int) -> None:
        super().__init__()
        self.lstm = [LSTMLayer(size, size) for _ in range(layers)]


class PredictionNetwork(nn.Module):
    """NeMo's `RNNTDecoder`: `prediction.embed` (blank is the padding row) and `prediction.dec_rnn`."""

    def __init__(self, config: TransducerConfig) -> None:
        super().__init__()
        self.hidden = config.pred_hidden
        self.prediction = {
            "embed": nn.Embedding(config.vocab_size + 1, config.pred_hidden),
            "dec_rnn": _LSTMStack(config.pred_hidden, config.pred_rnn_layers),
        }

    def initial_state(self, batch: int, dtype: mx.Dtype = mx.float32) -> tuple[mx.array, mx.array]:
        """Zero (h, c), each (layers, B, H), as NeMo's `initialize_state`."""
        shape = (len(self.prediction["dec_rnn"].lstm), batch, self.hidden)
        return mx.zeros(shape, dtype=dtype), mx.zeros(shape, dtype=dtype)

    def __call__(
        self, labels: mx.array, state: tuple[mx.array, mx.array]
    ) -> tuple[mx.array, tuple[mx.array, mx.array]]:
        """One step: labels (B,) -> output (B, H) and the new (h, c)."""
        layers = [(state[0][i], state[1][i]) for i in range(state[0].shape[0])]
        x, layers = self.step(labels, layers)
        return x, (mx.stack([h for h, _ in layers]), mx.stack([c for _, c in layers]))

    def step(
        self,
        labels: mx.array,
        layers: list[tuple[mx.array, mx.array]],
        input_table: mx.array | None = None,
    ) -> tuple[mx.array, list[tuple[mx.array, mx.array]]]:
        """One step over per-layer (h, c) pairs of (B, H): no stacking, for the greedy loop.
        With `input_table` (`input_table()`), the first layer's input part is a row of it."""
        lstm = self.prediction["dec_rnn"].lstm
        if input_table is None:
            gates_x = lstm[0].input_gates(self.prediction["embed"](labels))
        else:
            gates_x = input_table[labels]
        new = []
        for index, (layer, (h, c)) in enumerate(zip(lstm, layers, strict=True)):
            x, c = layer.cell(gates_x, h, c)
            new.append((x, c))
            if index + 1 < len(lstm):
                gates_x = lstm[index + 1].input_gates(x)
        return x, new

    def input_table(self) -> mx.array:
        """The first LSTM layer's input part for every label, (vocab + 1, 4H): its input is
        the label's embedding, so a step can read a row instead of a (H, 4H) product; at
        batch 1 on the CPU that product is a fifth of the bytes a step reads."""
        labels = mx.arange(self.prediction["embed"].weight.shape[0], dtype=mx.int32)
        return self.prediction["dec_rnn"].lstm[0].input_gates(self.prediction["embed"](labels))


class JointNetwork(nn.Module):
    """NeMo's `RNNTJoint`: `enc`, `pred` projections, activation, `joint_net` output layer.

    `joint_net` mirrors NeMo's Sequential (activation, dropout when configured, linear), so
    the output layer keeps NeMo's index: `joint_net.2` with dropout, `joint_net.1` without.
    """

    def __init__(self, config: TransducerConfig) -> None:
        super().__init__()
        self.activation = config.activation
        self.enc = nn.Linear(config.encoder_hidden, config.joint_hidden)
        self.pred = nn.Linear(config.pred_hidden, config.joint_hidden)
        placeholders = [nn.Identity(), nn.Identity()] if config.joint_dropout else [nn.Identity()]
        self.joint_net = [*placeholders, nn.Linear(config.joint_hidden, config.num_outputs)]

    def project_encoder(self, encoder_output: mx.array) -> mx.array:
        return self.enc(encoder_output)

    def project_prednet(self, prednet_output: mx.array) -> mx.array:
        return self.pred(prednet_output)

    def __call__(self, f: mx.array, g: mx.array) -> mx.array:
        """Logits from projected encoder frames f and projected predictor outputs g (broadcast)."""
        x = f + g
        if self.activation == "relu":
            x = nn.relu(x)
        elif self.activation == "tanh":
            x = mx.tanh(x)
        else:
            x = mx.sigmoid(x)
        return self.joint_net[-1](x)

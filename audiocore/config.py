"""FeatureConfig: every preprocessing parameter, in one frozen, validated object that travels with the model."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FeatureConfig(BaseModel):
    """How a waveform becomes the model's input. Changing any field but `hop_seconds` invalidates a trained model,
    which is why the whole object is stored in the model's metadata and the service reads it from there.
    `hop_seconds` only sets how far apart a long clip's windows are cut (safe to change, as YAMNet's params.py
    says of its patch hop): each window's features stay what the model learned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: int = Field(8000, gt=0, le=192_000, description="Audio is mixed to mono and resampled to this.")
    window_seconds: float = Field(1.0, gt=0, le=30, description="Length of one model input window.")
    hop_seconds: float = Field(0.5, gt=0, le=30, description="Step between windows of clips longer than one.")
    kind: Literal["mfcc", "logmel"] = "mfcc"
    n_fft: int = Field(256, ge=16)
    hop_length: int = Field(80, ge=1, description="STFT hop in samples (80 at 8 kHz = 10 ms).")
    n_mels: int = Field(40, ge=4, le=256)
    n_mfcc: int = Field(20, ge=2, le=128)
    deltas: bool = Field(False, description="MFCC only: append first and second temporal derivatives.")
    fmin: float = Field(0.0, ge=0)
    fmax: float | None = Field(None, gt=0)
    top_db: float = Field(80.0, gt=0, description="Dynamic range kept in the dB spectrum (floor = max - top_db).")
    scale: Literal["db", "log1p"] = Field(
        "db",
        description="How mel power is compressed. 'db': 10*log10 with the per-window top_db floor. 'log1p': "
        "log10(1 + 10000 * mel), no floor: the input musicnn's pretrained models were trained on "
        "(training.backbones).",
    )
    # False by default so that metadata written before this field existed still means what it meant; training's
    # default recipe turns it on (training.config.TrainConfig.features).
    cmn: bool = Field(
        False,
        description="Subtract each coefficient's mean over the window's frames (cepstral mean normalisation): "
        "removes gain and the microphone's/room's spectral colour, which is what differs between speakers' "
        "recordings. Turn off where the average spectrum is the signal (instrument timbre).",
    )
    cmn_floor_db: float | None = Field(
        None,
        gt=0,
        description="With cmn: take the mean (and with cvn the deviation) over the frames whose mel energy is within "
        "this many dB of the window's loudest frame, not over all frames, so that the padding and pauses around a "
        "short word do not decide what is subtracted. None: every frame.",
    )
    cvn: bool = Field(
        False,
        description="With cmn: also divide each coefficient by its standard deviation over those frames "
        "(cepstral mean and variance normalisation).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "FeatureConfig":
        nyquist = self.sample_rate / 2
        if self.fmax is not None and self.fmax > nyquist:
            raise ValueError(f"fmax={self.fmax} is above the Nyquist frequency {nyquist} of sample_rate")
        if self.n_fft > self.window_samples:
            raise ValueError(f"n_fft={self.n_fft} is longer than one window ({self.window_samples} samples)")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc={self.n_mfcc} cannot exceed n_mels={self.n_mels}")
        if self.deltas and self.kind != "mfcc":
            raise ValueError("deltas are only defined for kind='mfcc'")
        if self.scale == "log1p" and self.kind != "logmel":
            raise ValueError("scale='log1p' is for kind='logmel' (musicnn's input)")
        if (self.cvn or self.cmn_floor_db is not None) and not self.cmn:
            raise ValueError("cvn and cmn_floor_db refine cmn: set cmn: true")
        if self.deltas and self.frames_per_window < 9:
            raise ValueError("deltas need at least 9 frames per window")
        return self

    @property
    def window_samples(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return max(1, round(self.hop_seconds * self.sample_rate))

    @property
    def frames_per_window(self) -> int:
        return 1 + self.window_samples // self.hop_length  # librosa's centred STFT

    @property
    def n_features(self) -> int:
        if self.kind == "logmel":
            return self.n_mels
        return self.n_mfcc * (3 if self.deltas else 1)

    @property
    def input_shape(self) -> tuple[int, int]:
        """(frames, features) of one window: the model's input shape without the batch axis."""
        return (self.frames_per_window, self.n_features)

"""A run's settings as one frozen value: built once, passed CLI -> runs -> loop, kept in ``meta.json``.

:meth:`RunConfig.from_recipe` starts from the registry's recipe
(:class:`d2lnets.registry.Recipe`), applies what the user gave (``None``:
not given) and checks every number through :mod:`d2lnets.limits`;
:meth:`RunConfig.to_meta` gives the ``meta.json`` fields it owns (``model``,
``model_kwargs``, ``dataset``, ``resize``, ``seed`` and ``recipe``) and
:meth:`RunConfig.from_meta` reads them back, the same value. ``meta.json``
files written before the parameter server (the shipped weights', d2lnets
0.1) have no ``kvstore`` and ``num_workers`` in their recipe: they read as
``'device'`` and 1. Imports nothing of MXNet.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from .. import datasets, limits

__all__ = ['RunConfig', 'OPTIMIZER', 'LOSS', 'INIT']

# The lecture's fixed choices, recorded in meta.json's recipe.
OPTIMIZER, LOSS, INIT = 'sgd', 'softmax_cross_entropy', 'xavier'
_DEFAULT_DATASET = datasets.DEFAULT


@dataclass(frozen=True)
class RunConfig:
    """What a training run is: the same value in the CLI, the run folder and the loop.

    ``epochs`` counts every epoch of the run (those done before a resume too);
    ``batch_size`` is each worker's when ``num_workers > 1`` (``None``: the data
    iterator's, for the library's ``train``); ``resize`` ``None`` feeds 28 x 28;
    ``seed`` ``None`` means a random one, drawn when the run joins its job.
    """
    epochs: int
    lr: float
    model: Optional[str] = None
    batch_size: Optional[int] = None
    resize: Optional[int] = None
    dataset: str = _DEFAULT_DATASET
    limit: Optional[int] = None
    seed: Optional[int] = None
    kvstore: str = 'device'
    num_workers: int = 1
    model_kwargs: Tuple[Tuple[str, Any], ...] = ()    # sorted (name, value) pairs: a frozen dict

    def __post_init__(self) -> None:
        # num_epochs allows 0 (a resumed run only evaluated); --epochs is checked by from_recipe.
        object.__setattr__(self, 'epochs', limits.check('num_epochs', self.epochs))
        object.__setattr__(self, 'lr', limits.check('lr', self.lr))
        for key in ('batch_size', 'resize', 'limit', 'seed'):
            object.__setattr__(self, key, limits.check(key, getattr(self, key), optional=True))
        if not limits.is_int(self.num_workers) or self.num_workers < 1:
            raise ValueError('num_workers must be a positive integer, got %r' % (self.num_workers,))
        object.__setattr__(self, 'num_workers', int(self.num_workers))     # numpy's too: meta.json holds it
        if not isinstance(self.kvstore, str):
            raise ValueError('the kvstore of a run configuration is a name, such as device, got %r'
                             % (self.kvstore,))
        object.__setattr__(self, 'model_kwargs', tuple(sorted(dict(self.model_kwargs).items())))

    @classmethod
    def from_recipe(cls, recipe: Any, model: Optional[str] = None, **overrides: Any) -> 'RunConfig':
        """The recipe (a :class:`d2lnets.registry.Recipe`) with ``overrides``
        applied; an override ``None`` is one the user did not give. ``epochs``,
        ``batch_size`` and ``resize`` are checked as the options that give them."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError('RunConfig has no field %s' % ', '.join(sorted(unknown)))
        for key in ('epochs', 'batch_size', 'resize'):
            limits.check(key, overrides.get(key), optional=True)
        given = {k: v for k, v in overrides.items() if v is not None}
        base = dict(epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size, resize=recipe.resize)
        return cls(model=model, **dict(base, **given))

    def replace(self, **changes: Any) -> 'RunConfig':
        """This configuration with ``changes`` (checked again), as a resume extends ``epochs``."""
        return dataclasses.replace(self, **changes)

    @property
    def kwargs(self) -> Dict[str, Any]:
        """The builder's arguments as a dict."""
        return dict(self.model_kwargs)

    @property
    def global_batch_size(self) -> Optional[int]:
        """What one SGD step averages over: each worker's batch times the workers."""
        return self.batch_size * self.num_workers if self.batch_size else None

    def to_meta(self) -> Dict[str, Any]:
        """The ``meta.json`` fields this configuration owns, in their layout."""
        return {'model': self.model, 'model_kwargs': self.kwargs, 'dataset': self.dataset, 'resize': self.resize,
                'recipe': {'epochs': self.epochs, 'batch_size': self.batch_size, 'lr': self.lr,
                           'optimizer': OPTIMIZER, 'loss': LOSS, 'init': INIT, 'limit': self.limit,
                           'kvstore': self.kvstore, 'num_workers': self.num_workers},
                'seed': self.seed}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> 'RunConfig':
        """The configuration a ``meta.json`` (or a checkpoint's run settings) records;
        ``ValueError`` if a field is missing or out of bounds."""
        recipe = meta.get('recipe')
        if not isinstance(recipe, Mapping):
            raise ValueError("the run's settings have no recipe")
        try:
            return cls(epochs=recipe['epochs'], lr=recipe['lr'], model=meta.get('model'),
                       batch_size=recipe['batch_size'], resize=meta.get('resize'),
                       dataset=meta.get('dataset', _DEFAULT_DATASET), limit=recipe.get('limit'),
                       seed=meta.get('seed'), kvstore=recipe.get('kvstore', 'device'),
                       num_workers=recipe.get('num_workers', 1), model_kwargs=meta.get('model_kwargs') or ())
        except KeyError as err:
            raise ValueError("the run's recipe has no %s" % err) from None

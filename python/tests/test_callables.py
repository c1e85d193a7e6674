import functools

from multifrost import ChildWorker
from multifrost._callables import callable_table


class Mixin:
    def from_mixin(self):
        return "mixin"


class Base(ChildWorker):
    def inherited(self):
        return "base"

    def overridden(self):
        return "base"


class Worker(Base, Mixin):
    namespace = "ns"
    not_a_function = 5

    def __init__(self):
        super().__init__()
        self.assigned = functools.partial(max, 1)
        self._hidden_assigned = lambda: 1
        self.model = object()

    def add(self, a, b):
        return a + b

    async def fetch(self):
        return 1

    @staticmethod
    def static():
        return "static"

    @classmethod
    def klass(cls):
        return cls.__name__

    @property
    def prop(self):
        return 1

    def overridden(self):
        return "worker"

    def _private(self):
        return "no"

    def __dunder__(self):
        return "no"

    def run(self):  # overriding a ChildWorker member never makes it callable
        return "no"

    def stop(self, wait=True):
        return "no"

    def list_functions(self):
        return ["no"]

    class Nested:
        pass


def test_only_the_users_methods_are_callable():
    worker = Worker()
    table = callable_table(worker, ChildWorker)
    assert list(table) == sorted(["add", "assigned", "fetch", "from_mixin", "inherited", "klass", "overridden", "static"])
    assert table["overridden"]() == "worker"
    assert table["static"]() == "static" and table["klass"]() == "Worker"
    assert ChildWorker.list_functions(worker) == list(table)  # (Worker overrides list_functions locally)


def test_child_worker_members_are_never_callable():
    names = ChildWorker.list_functions(Worker())
    for name in ("run", "stop", "list_functions", "call", "stats", "namespace", "prop", "_private", "__dunder__",
                 "__init__", "Nested", "not_a_function", "model", "_hidden_assigned"):
        assert name not in names


def test_v4_worker_without_super_init_still_lists():
    class Old(ChildWorker):
        def __init__(self):  # no super().__init__(), as some v4 scripts do
            self.factor = 2

        def double(self, x):
            return x * self.factor

    assert Old().list_functions() == ["double"]

"""The Flask app of the support question that started pa_dbhealth, wired with pa_dbhealth.

    flask --app flask_demo.app seed        # a few emissores
    flask --app flask_demo.app dbcheck     # the audit
    flask --app flask_demo.app run         # http://127.0.0.1:5000/ and /dbhealth/

``FLASK_DEMO_ENGINE`` chooses the engine options: ``fitted`` (default: what
``engine_options`` says fits the live server), ``seed`` (the question's engine:
Flask-SQLAlchemy's defaults, QueuePool 5 + 10, pool_recycle unset) or ``answer`` (the
answer's hand-tuned pool: pool_size=2, max_overflow=1, pool_recycle=280).
``FLASK_DEMO_DBHEALTH=0`` leaves pa_dbhealth out (the benchmark's plain configurations).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, render_template
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_demo.database import database_url
from pa_dbhealth.flask import DbHealth, engine_options


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Emissor(db.Model):  # type: ignore[name-defined,misc]
    """An issuer, as in the support question."""

    __tablename__ = "emissor"
    id: Mapped[int] = mapped_column(primary_key=True)
    nome: Mapped[str] = mapped_column(String(200))
    cnpj: Mapped[str] = mapped_column(String(18), unique=True)


ENGINES: dict[str, Any] = {
    "seed": {},  # Flask-SQLAlchemy's defaults: QueuePool(pool_size=5, max_overflow=10)
    "answer": {"pool_size": 2, "max_overflow": 1, "pool_recycle": 280},
}


def create_app() -> Flask:
    app = Flask(__name__)
    url = database_url()
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["PA_DBHEALTH"] = {
        # PythonAnywhere's web workers are processes; under uWSGI they are detected.
        "WORKERS": int(os.environ["DEMO_WORKERS"]) if os.environ.get("DEMO_WORKERS") else None,
        # The health view's full body needs "Authorization: Bearer <token>"; this default
        # is for the demo only: set FLASK_HEALTH_TOKEN to a secret of your own.
        "HEALTH_TOKEN": os.environ.get("FLASK_HEALTH_TOKEN", "demo-health-token-not-secret"),
    }
    chosen = os.environ.get("FLASK_DEMO_ENGINE", "fitted")
    if chosen == "fitted":
        # pa_dbhealth, line 2 of 3 (line 1 is the import above)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
            url, options=app.config["PA_DBHEALTH"]
        )
    else:
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = dict(ENGINES[chosen])
    db.init_app(app)
    if os.environ.get("FLASK_DEMO_DBHEALTH", "1") == "1":
        DbHealth(app, db=db)  # pa_dbhealth, line 3 of 3

    @app.route("/")
    def listarEmissores() -> str:  # the question's name
        """The list view of the question; Flask-SQLAlchemy closes the session after it."""
        emissores = db.session.execute(db.select(Emissor).order_by(Emissor.nome)).scalars()
        return render_template("listar_emissores.html", emissores=list(emissores))

    @app.cli.command("seed")
    def seed() -> None:
        """Create the table and add sample emissores (idempotent)."""
        db.create_all()
        for number in range(1, 6):
            cnpj = f"00.000.000/0001-{number:02d}"
            if db.session.execute(db.select(Emissor).filter_by(cnpj=cnpj)).first() is None:
                db.session.add(Emissor(nome=f"Emissor {number}", cnpj=cnpj))
        db.session.commit()
        count = db.session.execute(db.select(db.func.count(Emissor.id))).scalar_one()
        print(f"{count} emissores in all.")

    return app


app = create_app()

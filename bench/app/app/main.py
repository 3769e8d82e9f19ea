"""The dockwarm benchmark service: a minimal FastAPI + SQLAlchemy app."""

from contextlib import asynccontextmanager
from datetime import datetime, timezone

import structlog
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from pydantic_settings import BaseSettings
from sqlalchemy import DateTime, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Settings(BaseSettings):
    database_url: str = "sqlite:////tmp/bench.db"


settings = Settings()
engine = create_engine(settings.database_url)
SessionLocal = sessionmaker(engine, expire_on_commit=False)
log = structlog.get_logger()


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ItemIn(BaseModel):
    name: str


class ItemOut(ItemIn):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime


def db():
    with SessionLocal() as session:
        yield session


@asynccontextmanager
async def lifespan(app: FastAPI):
    Base.metadata.create_all(engine)
    log.info("started", database=settings.database_url)
    yield


app = FastAPI(title="bench-api", lifespan=lifespan)


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/items", response_model=ItemOut, status_code=201)
def create_item(item: ItemIn, session: Session = Depends(db)) -> Item:
    row = Item(name=item.name, created_at=datetime.now(timezone.utc))
    session.add(row)
    session.commit()
    return row


@app.get("/items/{item_id}", response_model=ItemOut)
def get_item(item_id: int, session: Session = Depends(db)) -> Item:
    row = session.scalar(select(Item).where(Item.id == item_id))
    if row is None:
        raise HTTPException(404, "no such item")
    return row

"""Extensions, created here and bound to the app in create_app."""
from flask_babel import Babel
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from .db import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
cors = CORS()
#: Limits are declared on the routes that need them; nothing is limited by default.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
#: Translations of the reader's pages, the embed and the emails; the locale selector is donations.i18n.select_locale.
babel = Babel()

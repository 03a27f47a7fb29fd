"""Closed vocabularies of the raw data contract (DESIGN §3).

One place for every category a raw table may hold, so the contract, the simulator,
the feature registry and the serving request model agree by construction.
"""

from __future__ import annotations

# `suitability_reviews` (#12): advisor-led MiFID II suitability reviews; optional like every table but customers.
TABLES = ("customers", "holdings", "transactions", "events", "market", "suitability_reviews")

RISK_CLASSES = ("conservative", "balanced", "aggressive")
RISK_LEVELS = ("R1", "R2", "R3", "R4", "R5")
TIERS = ("mass", "affluent", "hnw")

OCCUPATIONS = (
    "salaried",
    "civil_servant",
    "professional",
    "self_employed",
    "business_owner",
    "retired",
    "student",
    "unemployed",
)
REGIONS = ("metro", "urban", "suburban", "rural")
INCOME_BANDS = ("low", "lower_middle", "middle", "upper_middle", "high")

# product_type -> (family, risk_level, is_liability)
PRODUCTS: dict[str, tuple[str, str, bool]] = {
    "current_account": ("deposit", "R1", False),
    "savings_deposit": ("deposit", "R1", False),
    "time_deposit": ("deposit", "R1", False),
    "money_market_fund": ("fund", "R1", False),
    "bond_fund": ("fund", "R2", False),
    "balanced_fund": ("fund", "R3", False),
    "equity_fund": ("fund", "R4", False),
    "structured_product": ("fund", "R5", False),
    "insurance": ("insurance", "R2", False),
    "pension": ("insurance", "R2", False),
    "mortgage": ("liability", "R1", True),
    "personal_loan": ("liability", "R1", True),
    "credit_card": ("liability", "R1", True),
}
PRODUCT_TYPES = tuple(PRODUCTS)
PRODUCT_FAMILIES = ("deposit", "fund", "insurance", "liability")

# Suitability: the highest product risk level a stated risk profile may buy at the bank.
MAX_RISK_LEVEL_FOR = {"conservative": "R2", "balanced": "R3", "aggressive": "R5"}

DIRECTIONS = ("in", "out")
# "system": credits and debits the bank books itself (salary via payroll, interest, fees, loan auto-debits).
CHANNELS = ("branch", "mobile", "web", "atm", "pos", "advisor", "system")
TXN_CATEGORIES = (
    "salary",
    "card_spend",
    "cash",
    "transfer",
    "bill_payment",
    "investment_buy",
    "investment_sell",
    "loan_repayment",
    "fx",
    "fee",
    "interest",
)
COUNTERPARTIES = ("internal", "external_bank", "brokerage", "overseas", "merchant")

EVENT_TYPES = ("login", "view", "search")
TOPICS = (
    "equity_funds",
    "fixed_income",
    "deposits",
    "pension",
    "study_abroad",
    "overseas_account",
    "mortgage",
    "insurance",
    "promotions",
    "fx",
    "complaints",
)

LIFECYCLE_STAGES = ("young_professional", "family_growth", "retirement")
# Life events the simulator plants (truth.life_event).
LIFE_EVENTS = ("home_purchase", "child_study_abroad", "retirement")

"""The Streamlit main script of the dashboard (``yuqing dashboard`` runs it).

It lives in ``yuqing`` because it wires adapters (bootstrap) to the app; the
``dashboard`` package itself never picks a store.
"""

from dashboard.app import main
from yuqing.bootstrap import build_dashboard_data

main(build_dashboard_data)

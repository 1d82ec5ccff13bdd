/* cuad.c - the 41 CUAD categories as smoldoc's own data (names from CUAD,
 * descriptions rephrased for prompting). */
#include "cuad.h"

#include <strings.h>

static const cuad_category cats[CUAD_N_CATEGORIES] = {
    {"Document Name", "The title of the contract."},
    {"Parties", "The persons or companies that sign the contract."},
    {"Agreement Date", "The date on which the contract was made."},
    {"Effective Date", "The date from which the contract takes effect."},
    {"Expiration Date", "When the initial term of the contract ends."},
    {"Renewal Term", "How the contract renews after the initial term, including automatic or optional extensions."},
    {"Notice Period to Terminate Renewal", "How much notice a party must give to stop a renewal."},
    {"Governing Law", "The state or country whose law governs the contract."},
    {"Most Favored Nation", "A promise that a party gets terms at least as good as any third party gets."},
    {"Non-Compete", "Limits on a party competing with the other, or working in some business, field or region."},
    {"Exclusivity", "An exclusive dealing commitment, such as buying all requirements from one party or not dealing with others."},
    {"No-Solicit of Customers", "Limits on a party soliciting or contracting with the other party's customers or partners."},
    {"Competitive Restriction Exception", "Exceptions or carve-outs to non-compete, exclusivity or no-solicit clauses."},
    {"No-Solicit of Employees", "Limits on a party soliciting or hiring the other party's employees or contractors."},
    {"Non-Disparagement", "A duty not to disparage the other party."},
    {"Termination for Convenience", "A right to end the contract without cause, by notice."},
    {"Rofr/Rofo/Rofn", "A right of first refusal, first offer or first negotiation."},
    {"Change of Control", "Termination rights, consent or notice when a party undergoes a change of control, merger or sale."},
    {"Anti-Assignment", "Consent or notice needed before the contract is assigned to a third party."},
    {"Revenue/Profit Sharing", "A duty to share revenue or profit with the other party."},
    {"Price Restrictions", "Limits on raising or lowering prices."},
    {"Minimum Commitment", "A minimum order size, amount or number of units to buy in a period."},
    {"Volume Restriction", "A fee increase or consent requirement when use exceeds a volume limit."},
    {"IP Ownership Assignment", "Intellectual property made by one party becoming the property of the other."},
    {"Joint IP Ownership", "Intellectual property owned jointly by the parties."},
    {"License Grant", "A license granted by one party to the other."},
    {"Non-Transferable License", "Limits on transferring a granted license to a third party."},
    {"Affiliate License-Licensor", "A license grant by, or including intellectual property of, the licensor's affiliates."},
    {"Affiliate License-Licensee", "A license grant to the licensee and its affiliates."},
    {"Unlimited/All-You-Can-Eat-License", "An enterprise, unlimited or all-you-can-eat license."},
    {"Irrevocable or Perpetual License", "A license that is irrevocable or perpetual."},
    {"Source Code Escrow", "A duty to deposit source code with an escrow agent."},
    {"Post-Termination Services", "Duties that continue after the contract ends, such as transition services or payment of fees."},
    {"Audit Rights", "A right to audit the other party's books, records or premises."},
    {"Uncapped Liability", "Liability without a cap for some breaches, such as infringement or confidentiality."},
    {"Cap on Liability", "A cap on liability or a time limit for bringing claims."},
    {"Liquidated Damages", "Liquidated damages for breach, or a fee on termination."},
    {"Warranty Duration", "How long a warranty against defects or errors lasts."},
    {"Insurance", "Insurance that a party must maintain for the other's benefit."},
    {"Covenant Not to Sue", "A promise not to contest the other party's intellectual property or not to bring certain claims."},
    {"Third Party Beneficiary", "A non-party who may enforce rights under the contract."},
};

const cuad_category *cuad_categories(void) { return cats; }

const cuad_category *cuad_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < CUAD_N_CATEGORIES; i++)
        if (!strcasecmp(cats[i].name, name)) return &cats[i];
    return NULL;
}

/**
 * The Nexmark streams (Tucker et al., "NEXMark – A Benchmark for Queries over Data Streams",
 * 2002), generated the way Apache Beam's and Flink's Nexmark generators do (Beam
 * `sdks/java/testing/nexmark/.../generator/model`): out of every 50 events 1 is a new person,
 * 3 are new auctions and 46 are bids; bids go mostly to a few hot auctions and come mostly from a
 * few hot bidders; prices are log-uniform from $1 to $10,000 (in cents); event time advances by
 * a fixed inter-event delay, so a run's event-time span is count / rate.
 *
 * Deterministic for a seed: the benchmark's graphs and the plain reference implementation
 * (reference.ts) see the same events.
 */
import { mulberry32 as random } from '../random.ts';

export interface Person {
  type: 'person';
  id: number;
  name: string;
  emailAddress: string;
  creditCard: string;
  city: string;
  state: string;
  dateTime: number;
  extra: string;
}

export interface Auction {
  type: 'auction';
  id: number;
  itemName: string;
  description: string;
  initialBid: number;
  reserve: number;
  dateTime: number;
  expires: number;
  seller: number;
  category: number;
  extra: string;
}

export interface Bid {
  type: 'bid';
  auction: number;
  bidder: number;
  price: number;
  channel: string;
  url: string;
  dateTime: number;
  extra: string;
}

export type NexmarkEvent = Person | Auction | Bid;

export interface GeneratorConfig {
  /** Events per second of event time (Beam's firstEventRate default: 10,000). */
  eventsPerSecond: number;
  /** Event time of the first event (ms since the epoch). */
  baseTime: number;
  seed: number;
}

const PERSON_PROPORTION = 1;
const AUCTION_PROPORTION = 3;
const BID_PROPORTION = 46;
const PROPORTION_DENOMINATOR = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;
const FIRST_PERSON_ID = 1000;
const FIRST_AUCTION_ID = 1000;
const FIRST_CATEGORY_ID = 10;
const NUM_CATEGORIES = 5;
/** Persons a new auction's seller or a bid's bidder is drawn from (Beam: numActivePeople). */
const ACTIVE_PEOPLE = 1000;
/** Auctions still open that a bid may go to (Beam: numInFlightAuctions). */
const IN_FLIGHT_AUCTIONS = 100;
/** 1 in HOT_AUCTION_RATIO bids go to any open auction, the others to a hot one (Beam defaults). */
const HOT_AUCTION_RATIO = 2;
const HOT_BIDDER_RATIO = 4;
const HOT_SELLER_RATIO = 4;
const US_STATES = ['AZ', 'CA', 'ID', 'OR', 'WA', 'WY'];
const US_CITIES = ['Phoenix', 'Los Angeles', 'San Francisco', 'Boise', 'Portland', 'Bend', 'Redmond', 'Seattle', 'Kent', 'Cheyenne'];
const FIRST_NAMES = ['Peter', 'Paul', 'Luke', 'John', 'Saul', 'Vicky', 'Kate', 'Julie', 'Sarah', 'Deiter', 'Walter'];
const LAST_NAMES = ['Shultz', 'Abrams', 'Spencer', 'White', 'Bartels', 'Walton', 'Smith', 'Jones', 'Noris'];
const CHANNELS = ['Google', 'Facebook', 'Baidu', 'Apple'];


function randomText(seed: number): string {
  const next = random(seed);
  let out = '';
  for (let i = 0; i < 65_536; i++) out += String.fromCharCode(97 + Math.floor(next() * 26));
  return out;
}

/** Persons created before event `n` (the n-th event's own included when it is one). */
function lastBase0PersonId(n: number): number {
  const epoch = Math.floor(n / PROPORTION_DENOMINATOR);
  const offset = Math.min(n % PROPORTION_DENOMINATOR, PERSON_PROPORTION - 1);
  return epoch * PERSON_PROPORTION + offset;
}

function lastBase0AuctionId(n: number): number {
  const epoch = Math.floor(n / PROPORTION_DENOMINATOR);
  let offset = n % PROPORTION_DENOMINATOR;
  if (offset < PERSON_PROPORTION) {
    // A person event: the auctions of the previous epoch.
    return epoch * AUCTION_PROPORTION - 1 < 0 ? 0 : epoch * AUCTION_PROPORTION - 1;
  }
  offset = Math.min(offset - PERSON_PROPORTION, AUCTION_PROPORTION - 1);
  return epoch * AUCTION_PROPORTION + offset;
}

/**
 * `count` events from event number `first`, in event-time order.
 *
 * @example
 *   for (const event of nexmarkEvents(0, 100_000, { eventsPerSecond: 10_000, baseTime: 0, seed: 1 })) ...
 */
export function* nexmarkEvents(first: number, count: number, config: GeneratorConfig): Generator<NexmarkEvent> {
  const delayMs = 1000 / config.eventsPerSecond;
  // Strings are slices of one random text: the generator must outrun the platform it feeds.
  const text = randomText(config.seed);
  for (let n = first; n < first + count; n++) {
    // One generator per event, seeded by its number: any range can be generated on its own.
    const next = random(config.seed * 1_000_003 + n);
    const int = (bound: number) => Math.floor(next() * bound);
    const price = () => Math.round(10 ** (next() * 6) * 100);
    const string = (length: number) => {
      const at = int(text.length - length);
      return text.slice(at, at + length);
    };
    const dateTime = Math.floor(config.baseTime + n * delayMs);
    const kind = n % PROPORTION_DENOMINATOR;
    if (kind < PERSON_PROPORTION) {
      const id = lastBase0PersonId(n) + FIRST_PERSON_ID;
      const name = `${FIRST_NAMES[int(FIRST_NAMES.length)]} ${LAST_NAMES[int(LAST_NAMES.length)]}`;
      yield {
        type: 'person', id, name, emailAddress: `${string(7)}@${string(5)}.com`,
        creditCard: `${1000 + int(9000)} ${1000 + int(9000)} ${1000 + int(9000)} ${1000 + int(9000)}`,
        city: US_CITIES[int(US_CITIES.length)], state: US_STATES[int(US_STATES.length)], dateTime, extra: string(20),
      };
    } else if (kind < PERSON_PROPORTION + AUCTION_PROPORTION) {
      const id = lastBase0AuctionId(n) + FIRST_AUCTION_ID;
      const people = lastBase0PersonId(n) + 1;
      // Hot sellers: most auctions come from a few persons (Beam: hotSellersRatio).
      const seller = int(HOT_SELLER_RATIO) > 0 ? Math.floor((people - 1) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO : Math.max(0, people - 1 - int(Math.min(people, ACTIVE_PEOPLE)));
      const initialBid = price();
      yield {
        type: 'auction', id, itemName: string(12), description: string(30), initialBid, reserve: initialBid + price(), dateTime,
        expires: dateTime + 10_000 + int(20_000), seller: seller + FIRST_PERSON_ID, category: FIRST_CATEGORY_ID + int(NUM_CATEGORIES), extra: string(20),
      };
    } else {
      const auctions = lastBase0AuctionId(n) + 1;
      const people = lastBase0PersonId(n) + 1;
      const auction = int(HOT_AUCTION_RATIO) > 0 ? Math.floor((auctions - 1) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO : Math.max(0, auctions - 1 - int(Math.min(auctions, IN_FLIGHT_AUCTIONS)));
      const bidder = int(HOT_BIDDER_RATIO) > 0 ? Math.floor((people - 1) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1 : Math.max(0, people - 1 - int(Math.min(people, ACTIVE_PEOPLE)));
      const channel = int(10) < 9 ? CHANNELS[int(CHANNELS.length)] : `channel-${int(100)}`;
      yield {
        type: 'bid', auction: auction + FIRST_AUCTION_ID, bidder: Math.min(bidder, people - 1) + FIRST_PERSON_ID, price: price(), channel,
        url: `https://www.nexmark.com/${string(5)}/${string(5)}/item.htm?query=1&channel_id=${int(1000)}`, dateTime, extra: string(10),
      };
    }
  }
}

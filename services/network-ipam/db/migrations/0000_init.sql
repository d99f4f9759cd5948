CREATE SCHEMA IF NOT EXISTS "network_ipam";
--> statement-breakpoint
CREATE TABLE "network_ipam"."allocations" (
	"id" serial PRIMARY KEY NOT NULL,
	"node_id" integer NOT NULL,
	"network_id" integer NOT NULL,
	"range_id" integer NOT NULL,
	"family" text NOT NULL,
	"address" "inet" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "allocations_address_key" UNIQUE("address"),
	CONSTRAINT "allocations_range_node_key" UNIQUE("range_id","node_id")
);
--> statement-breakpoint
CREATE TABLE "network_ipam"."free_addresses" (
	"range_id" integer NOT NULL,
	"address" "inet" NOT NULL,
	CONSTRAINT "free_addresses_range_id_address_pk" PRIMARY KEY("range_id","address")
);
--> statement-breakpoint
CREATE TABLE "network_ipam"."networks" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"deployment_id" integer NOT NULL,
	"category" text NOT NULL,
	"group_name" text NOT NULL,
	"conduit" text NOT NULL,
	"vlan" integer DEFAULT 0 NOT NULL,
	"use_vlan" boolean DEFAULT false NOT NULL,
	"team_mode" integer DEFAULT 5 NOT NULL,
	"use_team" boolean DEFAULT false NOT NULL,
	"use_bridge" boolean DEFAULT false NOT NULL,
	"configure" boolean DEFAULT true NOT NULL,
	"pbr" text,
	"v6prefix" text,
	"v6_auto" boolean DEFAULT false NOT NULL,
	"sort_order" integer DEFAULT 1000 NOT NULL,
	"role_defined" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "networks_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "network_ipam"."nodes" (
	"id" integer PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"admin" boolean NOT NULL,
	"deployment_id" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "network_ipam"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "network_ipam"."ranges" (
	"id" serial PRIMARY KEY NOT NULL,
	"network_id" integer NOT NULL,
	"name" text NOT NULL,
	"family" text NOT NULL,
	"first" "inet" NOT NULL,
	"last" "inet" NOT NULL,
	"prefix" integer NOT NULL,
	"overlap" boolean DEFAULT false NOT NULL,
	"conduit" text,
	"vlan" integer,
	"use_vlan" boolean,
	"use_bridge" boolean,
	"team_mode" integer,
	"use_team" boolean,
	"allow_anon_leases" boolean NOT NULL,
	"allow_bound_leases" boolean NOT NULL,
	"anon_lease_time" integer NOT NULL,
	"bound_lease_time" integer NOT NULL,
	"pooled" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ranges_network_name_key" UNIQUE("network_id","name")
);
--> statement-breakpoint
CREATE TABLE "network_ipam"."role_tasks" (
	"id" serial PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"role" text NOT NULL,
	"node_id" integer DEFAULT 0 NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_error" text,
	CONSTRAINT "role_tasks_key" UNIQUE("kind","role","node_id")
);
--> statement-breakpoint
CREATE TABLE "network_ipam"."routers" (
	"id" serial PRIMARY KEY NOT NULL,
	"network_id" integer NOT NULL,
	"family" text NOT NULL,
	"address" "inet" NOT NULL,
	"prefix" integer NOT NULL,
	"pref" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "routers_network_family_key" UNIQUE("network_id","family")
);
--> statement-breakpoint
CREATE TABLE "network_ipam"."settings" (
	"key" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "network_ipam"."free_addresses" ADD CONSTRAINT "free_addresses_range_id_ranges_id_fk" FOREIGN KEY ("range_id") REFERENCES "network_ipam"."ranges"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "network_ipam"."ranges" ADD CONSTRAINT "ranges_network_id_networks_id_fk" FOREIGN KEY ("network_id") REFERENCES "network_ipam"."networks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "network_ipam"."routers" ADD CONSTRAINT "routers_network_id_networks_id_fk" FOREIGN KEY ("network_id") REFERENCES "network_ipam"."networks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "allocations_node_idx" ON "network_ipam"."allocations" USING btree ("node_id");--> statement-breakpoint
CREATE INDEX "allocations_network_idx" ON "network_ipam"."allocations" USING btree ("network_id");--> statement-breakpoint
CREATE INDEX "networks_category_idx" ON "network_ipam"."networks" USING btree ("category");--> statement-breakpoint
CREATE INDEX "nodes_name_idx" ON "network_ipam"."nodes" USING btree ("name");--> statement-breakpoint
CREATE INDEX "role_tasks_next_idx" ON "network_ipam"."role_tasks" USING btree ("next_at");